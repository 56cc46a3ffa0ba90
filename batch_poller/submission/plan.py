"""Input files -> the jobs they become: every line checked, record ids made unique, the records
split over as few jobs as the per-job limits allow, as evenly as they can be. One streaming
pass over the input; nothing is uploaded until the whole input is known to be good."""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from batch_poller.model_families import Family
from batch_poller.submission.lines import InputError, check_line

RECORD_ID_CHARS = 11  # as Bedrock's own ids for records that have none
READ_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SubmitLimits:
    """Bedrock's per-job quotas: per account and region, so each can be set in config."""

    min_records: int = 100
    max_records: int = 50_000
    max_line_bytes: int = 1024 * 1024
    # One input file a job, and an input file is at most 1 GB.
    max_job_bytes: int = 1024**3


@dataclass(frozen=True, slots=True)
class JobSlice:
    """One job's records: positions `start` to `end` (exclusive) in the input's order."""

    start: int
    end: int
    size: int  # bytes of its lines, newlines included

    @property
    def records(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class SubmissionPlan:
    files: tuple[Path, ...]
    records: int
    size: int
    jobs: tuple[JobSlice, ...]
    # The ids given to records that had none, by position.
    assigned_ids: dict[int, str]
    # sha256 of every line read, in order: the input's identity, and how a change made to it
    # while it is being uploaded is noticed.
    digest: str


def plan_submission(
    files: Iterable[Path],
    family: Family,
    limits: SubmitLimits,
    labels: Mapping[Path, str] | None = None,
) -> SubmissionPlan:
    """Reads and checks every line of the files; InputError names the first bad line (its
    file, or the file's label such as the S3 URI it came from, and line number) or why the
    input cannot make jobs Bedrock accepts."""
    paths = tuple(files)
    sizes = array("Q")  # each record's bytes: the split needs them, a line each is 8 bytes
    ids: dict[str, tuple[str, int]] = {}
    unnamed: list[int] = []
    digest = hashlib.sha256()
    for label, number, raw in input_lines(paths, limits.max_line_bytes, labels):
        digest.update(raw + b"\n")
        where = f"{label} line {number}"
        line = check_line(raw, where, family, limits.max_line_bytes)
        if line.record_id is None:
            unnamed.append(len(sizes))
        elif (first := ids.setdefault(line.record_id, (label, number))) != (label, number):
            raise InputError(
                f"{where}: recordId {line.record_id!r} is also on {first[0]} line {first[1]};"
                " each record needs its own"
            )
        sizes.append(line.size + 1)
    if not sizes:
        names = [(labels or {}).get(path) or str(path) for path in paths]
        raise InputError(f"no records in {', '.join(names)}")
    assigned = dict(zip(unnamed, _fresh_ids(ids), strict=False))
    jobs = split(sizes, limits)
    return SubmissionPlan(paths, len(sizes), sum(sizes), jobs, assigned, digest.hexdigest())


def split(sizes: array[int], limits: SubmitLimits) -> tuple[JobSlice, ...]:
    """As few jobs as the limits allow, each of about the same number of records; a job is
    cut early only where its bytes would pass the limit."""
    total = len(sizes)
    count = max(math.ceil(total / limits.max_records), math.ceil(sum(sizes) / limits.max_job_bytes))
    target = math.ceil(total / count)
    jobs: list[JobSlice] = []
    start = size = 0
    for position, line in enumerate(sizes):
        if line > limits.max_job_bytes:
            raise InputError(f"record {position + 1} alone is over {limits.max_job_bytes} bytes")
        if position - start == target or size + line > limits.max_job_bytes:
            jobs.append(JobSlice(start, position, size))
            start, size = position, 0
        size += line
    jobs.append(JobSlice(start, total, size))
    for number, job in enumerate(jobs, start=1):
        if job.records < limits.min_records:
            what = "the input has" if len(jobs) == 1 else f"job {number} of {len(jobs)} would have"
            raise InputError(
                f"{what} {job.records} records, fewer than the {limits.min_records} Bedrock"
                " needs in a job ([submit] min_records_per_job)"
            )
    return tuple(jobs)


def _fresh_ids(taken: Mapping[str, object]) -> Iterator[str]:
    """R0000000001, R0000000002, ...: ids of 11 characters, skipping any a line already has."""
    number = 0
    while True:
        number += 1
        candidate = f"R{number:0{RECORD_ID_CHARS - 1}d}"
        if candidate not in taken:
            yield candidate


def input_lines(
    paths: tuple[Path, ...], max_line_bytes: int, labels: Mapping[Path, str] | None = None
) -> Iterator[tuple[str, int, bytes]]:
    """Each non-blank line of each file with the file's label (its path, unless labelled) and
    its number, read a megabyte at a time; a line over the limit is refused as soon as it is,
    never held whole."""
    for path in paths:
        label = (labels or {}).get(path) or str(path)
        try:
            # A pipe, a FIFO or a device cannot be read twice (checked, then uploaded).
            if path.exists() and not path.is_file():
                raise InputError(f"{label}: not a regular file; give a file, or an s3:// object")
            with path.open("rb") as stream:
                number = 0
                pending = b""
                while chunk := stream.read(READ_BYTES):
                    *whole, pending = (pending + chunk).split(b"\n")
                    for raw in whole:
                        number += 1
                        if raw.strip():
                            yield label, number, raw.rstrip(b"\r")
                    if len(pending) > max_line_bytes:
                        where = f"{label} line {number + 1}"
                        raise InputError(f"{where}: over the {max_line_bytes} limit of a record")
                if pending.strip():
                    yield label, number + 1, pending.rstrip(b"\r")
        except OSError as error:
            raise InputError(f"{label}: {error.strerror or error}") from None

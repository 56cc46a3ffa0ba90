"""A submission, from local JSONL files to tracked jobs: the input checked and split, each
job's input uploaded, every upload verified, each job created once, then tracked with the
input folder it owns.

Everything is derived from the content and the parameters: the submission's id, the jobs'
names, folders and client tokens. Running the same submission again, after a crash or by
mistake, finds the jobs already tracked, or gets the job Bedrock already made for that token:
it never makes a second one."""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from batch_poller.aws.bedrock import ROLE_PATTERN, S3_URI_PATTERN
from batch_poller.aws.errors import AwsError
from batch_poller.aws.s3 import S3Uri
from batch_poller.cleanup import CleanupRefused, checked_prefix
from batch_poller.config import SubmitSettings
from batch_poller.domain import GroupStatus, check_group_name
from batch_poller.model_families import family_for
from batch_poller.rows import SubmissionRow
from batch_poller.runtime import Runtime
from batch_poller.submission.launch import LaunchReport, launch_submissions
from batch_poller.submission.lines import InputError, SubmitError
from batch_poller.submission.plan import (
    JobSlice,
    SubmissionPlan,
    SubmitLimits,
    input_lines,
    plan_submission,
)

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9+.-]+")
PIECE_BYTES = 1024 * 1024  # read and handed to the upload a megabyte at a time
# Bedrock's limits on a job's name and its timeout.
MAX_JOB_NAME = 63
TIMEOUT_HOURS = range(24, 169)


@dataclass(frozen=True)
class SubmitRequest:
    # Local files, or s3:// URIs of objects (copied to a scratch folder to be checked).
    inputs: tuple[Path | str, ...]
    model_id: str
    role_arn: str
    # s3://bucket/prefix/: each job's input and output go in a folder of its own below it.
    folder: str
    name: str | None = None
    group: str | None = None
    timeout_hours: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    # A resubmission: the job whose records it runs again (its group takes the new jobs
    # even when sealed or compiled).
    retries_of: str | None = None
    # Seal the named group once this submission's jobs are tracked. A group made because the
    # input was split is always sealed so: it is this submission's.
    seal: bool = False


@dataclass(frozen=True)
class SubmittedJob:
    name: str
    records: int
    input_uri: str
    # "submitted"; "already submitted" (by this submission, run before); "queued" (waiting
    # for room under the model's quota: the daemon submits it); "refused" (by Bedrock).
    state: str
    arn: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class _PlannedJob:
    slice: JobSlice
    row: SubmissionRow


async def submit(
    rt: Runtime, request: SubmitRequest, limits: SubmitLimits | None = None
) -> list[SubmittedJob]:
    """Submits the input as one or more jobs and tracks them. InputError when the input or the
    request is refused: then nothing was uploaded or created; SubmitError when a step after
    the checks failed, saying which."""
    folder = _checked_request(rt, request)
    if request.group is not None and request.retries_of is None:
        group = await rt.store.get_group(request.group)
        if group is not None and group.status is not GroupStatus.OPEN:
            raise InputError(
                f"group {request.group!r} is {group.status.value.lower()}: it takes no more jobs"
            )
    limits = limits or _limits(rt.settings.submit)
    with tempfile.TemporaryDirectory(prefix="batch-poller-submit-") as scratch:
        files, labels = await _local_inputs(rt, request.inputs, Path(scratch))
        plan = await asyncio.to_thread(
            plan_submission, files, family_for(request.model_id), limits, labels
        )
        jobs = _planned_jobs(request, plan, folder)
        tokens = [job.row.client_token for job in jobs]
        earlier = {row.client_token: row for row in await rt.store.submissions(tokens)}
        # Each job's input goes up before the job is recorded: a recorded job has its input.
        waiting = [job for job in jobs if job.row.client_token not in earlier]
        await _upload_inputs(rt, plan, waiting)
    await rt.store.record_submissions([job.row for job in waiting], rt.clock.now())
    try:
        report = await launch_submissions(rt, tokens)
    except AwsError as error:
        # Recorded and uploaded: the daemon's passes create them once Bedrock answers.
        report = LaunchReport(queued=list(tokens), unavailable=str(error))
    rows = {row.client_token: row for row in await rt.store.submissions(tokens)}
    return [_outcome(job, rows[job.row.client_token], report) for job in jobs]


def _outcome(job: _PlannedJob, row: SubmissionRow, report: LaunchReport) -> SubmittedJob:
    token = row.client_token
    if token in report.refused or row.state == "refused":
        state = "refused"
    elif row.state == "tracked":
        state = "submitted" if token in report.tracked else "already submitted"
    else:
        state = "queued"
    return SubmittedJob(
        name=row.job_name,
        records=job.slice.records,
        input_uri=row.input_uri,
        state=state,
        arn=row.arn,
        error=report.refused.get(token)
        or (row.last_error or report.unavailable if state in ("queued", "refused") else None),
    )


async def _local_inputs(
    rt: Runtime, inputs: tuple[Path | str, ...], scratch: Path
) -> tuple[list[Path], dict[Path, str]]:
    """The inputs as local files: an s3:// object is copied into the scratch folder (streamed,
    never held in memory) and labelled with its URI, which every error names."""
    files: list[Path] = []
    labels: dict[Path, str] = {}
    for number, given in enumerate(inputs):
        if not str(given).startswith("s3://"):
            files.append(Path(given))
            continue
        try:
            uri = S3Uri.parse(str(given))
        except ValueError as error:
            raise InputError(f"{given}: {error}") from None
        local = scratch / f"{number}.jsonl"
        try:
            await rt.s3.download(uri, local)
        except AwsError as error:
            what = "no such object" if error.not_found else str(error)
            raise InputError(f"{given}: {what}") from None
        files.append(local)
        labels[local] = str(given)
    return files, labels


def _limits(settings: SubmitSettings) -> SubmitLimits:
    return SubmitLimits(
        min_records=settings.min_records_per_job,
        max_records=settings.max_records_per_job,
        max_line_bytes=settings.max_record_bytes,
        max_job_bytes=settings.max_job_bytes,
    )


def _checked_request(rt: Runtime, request: SubmitRequest) -> S3Uri:
    """The folder the jobs go in; InputError naming what is wrong with the request."""
    if not request.inputs:
        raise InputError("no input file given")
    if not request.model_id.strip():
        raise InputError("no model id given")
    if not ROLE_PATTERN.match(request.role_arn):
        raise InputError(
            f"not an IAM role ARN: {request.role_arn!r} (arn:aws:iam::ACCOUNT:role/NAME)"
        )
    if request.timeout_hours is not None and request.timeout_hours not in TIMEOUT_HOURS:
        raise InputError(f"timeout of {request.timeout_hours} hours: Bedrock takes 24 to 168")
    if request.group is not None:
        try:
            check_group_name(request.group)
        except ValueError as error:
            raise InputError(str(error)) from None
    try:
        folder = S3Uri.parse(request.folder)
    except ValueError as error:
        raise InputError(f"--bucket: {error}") from None
    if not request.folder.endswith("/"):
        raise InputError(f"--bucket {request.folder}: a folder ends with '/'")
    if not S3_URI_PATTERN.match(request.folder) or "//" in request.folder.removeprefix("s3://"):
        raise InputError(
            f"--bucket {request.folder!r}: Bedrock takes a bucket name of lower-case letters, "
            "digits, '.' and '-', and folder names of letters, digits and -!_*'(). only"
        )
    seen: set[str] = set()
    for given in request.inputs:
        key = str(given) if str(given).startswith("s3://") else str(Path(given).resolve())
        if key in seen:
            raise InputError(f"{given} is given twice: its records would run twice")
        seen.add(key)
    try:
        # Cleanup deletes the input folders made here, one a job below this folder: one that
        # it would refuse to delete is refused now, not after the jobs have run.
        a_job_folder = folder.child(f"{folder.key}job/input/")
        checked_prefix(str(a_job_folder), rt.settings.cleanup.managed_prefixes)
    except CleanupRefused as refused:
        raise InputError(f"--bucket {request.folder}: {refused}") from None
    return folder


def _planned_jobs(request: SubmitRequest, plan: SubmissionPlan, folder: S3Uri) -> list[_PlannedJob]:
    identity = hashlib.sha256(
        orjson.dumps(
            {
                "model": request.model_id,
                "role": request.role_arn,
                "folder": request.folder,
                "name": request.name,
                "group": request.group,
                "timeout": request.timeout_hours,
                "tags": dict(sorted(request.tags.items())),
                "retries_of": request.retries_of,
                "seal": request.seal,
                "jobs": [(job.start, job.end) for job in plan.jobs],
                "input": plan.digest,
            }
        )
    ).hexdigest()[:16]
    base = _job_name_base(request, identity)
    group = request.group or (base if len(plan.jobs) > 1 else None)
    jobs = []
    for number, part in enumerate(plan.jobs, start=1):
        name = base if len(plan.jobs) == 1 else f"{base}-{number}"
        job_folder = folder.child(f"{folder.key}{name}/")
        input_folder = f"{job_folder}input/"
        row = SubmissionRow(
            client_token=f"{identity}-{number}",
            job_name=name,
            model_id=request.model_id,
            role_arn=request.role_arn,
            input_uri=f"{input_folder}records.jsonl",
            output_uri=f"{job_folder}output/",
            input_folder=input_folder,
            timeout_hours=request.timeout_hours,
            tags=dict(request.tags),
            group_name=group,
            retries_of=request.retries_of,
            seals_group=group is not None and (request.seal or request.group is None),
        )
        jobs.append(_PlannedJob(part, row))
    return jobs


def _job_name_base(request: SubmitRequest, identity: str) -> str:
    """`{name}-{identity}`: the name given (or the first file's), made of what Bedrock
    allows in a job name, with room for the identity and a job's number."""
    first = str(request.inputs[0]).rstrip("/").rpartition("/")[2]
    given = request.name or first.removesuffix(".jsonl")
    safe = _NAME_UNSAFE.sub("-", given).strip("-+.") or "batch"
    room = MAX_JOB_NAME - len(identity[:8]) - len("-") - len("-999")
    return f"{safe[:room].rstrip('-+.')}-{identity[:8]}"


async def _upload_inputs(rt: Runtime, plan: SubmissionPlan, jobs: list[_PlannedJob]) -> None:
    """Uploads the jobs' inputs, reading the files once more; refused if they changed since
    they were checked (the jobs would not run what was checked)."""
    reader = _InputReader(plan)
    wanted = {job.slice.start: job for job in jobs}
    for part in plan.jobs:
        job = wanted.get(part.start)
        if job is None:
            await asyncio.to_thread(reader.skip_to, part.end)
            continue
        target = S3Uri.parse(job.row.input_uri)
        try:
            # Parts a killed upload of this input left behind are billed until aborted.
            await rt.s3.abort_unfinished_uploads(target)
            await rt.s3.upload(target, reader.pieces(part.end))
        except AwsError as error:
            raise SubmitError(f"uploading {job.row.input_uri}: {error}") from None
    await asyncio.to_thread(reader.skip_to, plan.records)
    if reader.digest() != plan.digest:
        raise InputError("the input files changed while they were being submitted: run it again")


class _InputReader:
    """The checked input's lines again, in order, with the ids assigned to those without."""

    def __init__(self, plan: SubmissionPlan) -> None:
        self._plan = plan
        self._lines = input_lines(plan.files, max_line_bytes=2**63)
        self._position = 0
        self._digest = hashlib.sha256()

    def digest(self) -> str:
        return self._digest.hexdigest()

    async def pieces(self, end: int) -> AsyncIterator[bytes]:
        while piece := await asyncio.to_thread(self._piece, end):
            yield piece

    def skip_to(self, end: int) -> None:
        while self._piece(end):
            pass

    def _piece(self, end: int) -> bytes:
        """Up to about a megabyte of lines, none at or past position `end`."""
        out: list[bytes] = []
        size = 0
        while self._position < end and size < PIECE_BYTES:
            _, _, raw = next(self._lines, (None, 0, b""))
            if not raw:
                break  # the files are shorter than they were: the digest will differ
            self._digest.update(raw + b"\n")
            if (record_id := self._plan.assigned_ids.get(self._position)) is not None:
                raw = _with_record_id(raw, record_id)
            out += (raw.removeprefix(b"\xef\xbb\xbf"), b"\n")
            size += len(raw) + 1
            self._position += 1
        return b"".join(out)


def _with_record_id(raw: bytes, record_id: str) -> bytes:
    """The line's object with `recordId` as its first key (the line was checked: an object
    holding at least modelInput)."""
    start = raw.index(b"{") + 1
    return raw[:start] + b'"recordId":' + orjson.dumps(record_id) + b"," + raw[start:]

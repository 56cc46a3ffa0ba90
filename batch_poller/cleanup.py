"""What a job owns in S3, the guards that stand before any deletion, and the deletion itself.

The daemon deletes only what it was told it owns: the job's output folder
`{output uri}/{job id}/`, and the input folder named when the job was tracked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import structlog

from batch_poller.aws.s3 import DELETE_BATCH, S3, S3Uri
from batch_poller.domain import JobStatus
from batch_poller.rows import JobRow

log = structlog.get_logger(__name__)


class CleanupRefused(Exception):
    """A guard said no; the message names the prefix and the reason."""


@dataclass(frozen=True)
class CleanupResult:
    objects: int = 0
    bytes: int = 0
    delete_requests: int = 0

    def __add__(self, other: CleanupResult) -> CleanupResult:
        return CleanupResult(
            self.objects + other.objects,
            self.bytes + other.bytes,
            self.delete_requests + other.delete_requests,
        )


def owned_prefixes(job: JobRow) -> list[str]:
    """What a cleanup of this job deletes."""
    return [p for p in (job.output_s3_prefix, job.s3_folder) if p]


def input_folder(input_uri: str) -> str:
    """The job's own input folder: the prefix it was created with, or the folder of its input
    file. Bedrock reads a `.jsonl` URI as one file and anything else as a prefix."""
    uri = S3Uri.parse(input_uri)
    if uri.key.endswith(".jsonl"):
        return str(uri.child(uri.key.rpartition("/")[0] + "/" if "/" in uri.key else ""))
    return str(uri.as_folder())


def check_owned_input(folder: str, input_uri: str | None) -> None:
    """An input folder the daemon may own is the job's own folder or one inside it; a broader
    one would take other jobs' data with it. CleanupRefused names the folder it would accept."""
    if not input_uri:
        raise CleanupRefused(f"{folder}: the job's input location is unknown, so it is not owned")
    try:
        own = input_folder(input_uri)
    except ValueError as error:
        raise CleanupRefused(f"{folder}: the job's input {error}") from None
    if not S3Uri.parse(own).key:
        raise CleanupRefused(
            f"{folder} is not the job's own input folder: its input {input_uri} lies at the "
            "bucket root, which is never deleted"
        )
    if not folder.startswith(own):
        raise CleanupRefused(
            f"{folder} is not the job's own input folder: give {own} or a folder inside it "
            f"(the job reads {input_uri})"
        )


def needed_locations(job: JobRow) -> list[str]:
    """What this job still reads: its input and output, until its results are stored."""
    if job.status is JobStatus.FAILED or job.results_fetched_at is not None:
        return []
    return [p for p in (job.output_s3_prefix, job.input_s3_uri) if p]


def checked_prefix(
    uri: str, managed_prefixes: Sequence[str], others: Iterable[tuple[str, str]] = ()
) -> S3Uri:
    """The prefix, if every guard lets it be deleted; else CleanupRefused saying why.

    `others` are (job ARN, location) pairs of data other jobs still need.
    """
    try:
        prefix = S3Uri.parse(uri)
    except ValueError as error:
        raise CleanupRefused(str(error)) from None
    if not prefix.key.strip("/"):
        raise CleanupRefused(f"{uri} is a bucket root: never deleted")
    if not prefix.key.endswith("/"):
        # Without the boundary, cleaning job_1 would also match job_10.
        raise CleanupRefused(f"{uri} does not end at a '/' boundary")
    if any(part in (".", "..") for part in prefix.key.split("/")):
        # S3 keys are literal: `job-1/../` is neither job-1's folder nor its parent.
        raise CleanupRefused(f"{uri} has a '.' or '..' segment, which S3 does not resolve")
    if managed_prefixes and not any(_within(prefix, m) for m in managed_prefixes):
        raise CleanupRefused(
            f"{uri} is outside [cleanup] managed_prefixes (checked: {', '.join(managed_prefixes)})"
        )
    for arn, other in others:
        try:
            other_prefix = S3Uri.parse(other)
        except ValueError:
            continue
        if other_prefix.bucket != prefix.bucket:
            continue
        # Either way round loses data: deleting a parent of its folder, or a part of it.
        if other_prefix.key.startswith(prefix.key):
            raise CleanupRefused(f"{uri} holds {other}, which job {arn} still needs")
        if prefix.key.startswith(other_prefix.key):
            raise CleanupRefused(f"{uri} lies inside {other}, which job {arn} still needs")
    return prefix


def _within(prefix: S3Uri, managed: str) -> bool:
    try:
        root = S3Uri.parse(managed)
    except ValueError:
        return False
    root_key = root.as_folder().key
    # Strictly below the root: a managed root itself is never deleted whole.
    return (
        root.bucket == prefix.bucket
        and prefix.key.startswith(root_key)
        and len(prefix.key) > len(root_key)
    )


Counter = Callable[[int], Awaitable[None]]
Fence = Callable[[], Awaitable[None]]


async def _ignore(_: int) -> None:
    return None


async def _no_fence() -> None:
    return None


async def delete_prefix(
    s3: S3, prefix: S3Uri, on_deleted: Counter = _ignore, fence: Fence = _no_fence
) -> CleanupResult:
    """Deletes every object under the prefix, 1,000 keys a request, counting bytes as it goes.
    `fence` is awaited right before every request and raises to stop it (a lost lease)."""
    result = CleanupResult()
    batch: list[str] = []
    batch_bytes = 0

    async def flush() -> None:
        nonlocal result, batch, batch_bytes
        await fence()
        await s3.delete_keys(prefix.bucket, batch)
        await on_deleted(batch_bytes)
        result += CleanupResult(len(batch), batch_bytes, 1)
        batch, batch_bytes = [], 0

    async for item in s3.list_objects(prefix):
        if not item.key.startswith(prefix.key):
            log.warning("cleanup_key_outside_prefix", key=item.key, prefix=str(prefix))
            continue
        batch.append(item.key)
        batch_bytes += item.size
        if len(batch) == DELETE_BATCH:
            await flush()
    if batch:
        await flush()
    return result


@dataclass(frozen=True)
class CleanupOutcome:
    result: CleanupResult
    refused: list[str]


async def clean_job(
    s3: S3,
    job: JobRow,
    managed_prefixes: Sequence[str],
    others: Iterable[tuple[str, str]] = (),
    on_deleted: Counter = _ignore,
    *,
    fence: Fence = _no_fence,
    force: bool = False,
) -> CleanupOutcome:
    """Deletes each prefix the job owns that the guards allow; says which were refused.

    Each prefix stands alone: a shared input folder that another job still reads is kept for
    now, while the job's own output folder goes. `force` deletes a folder that holds files
    that are not the job's own (see `check_no_strangers`).
    """
    needed = list(others)
    result = CleanupResult()
    refused = []
    for uri in owned_prefixes(job):
        try:
            if uri == job.s3_folder:
                # Checked when tracked too; checked again here for rows stored by older versions.
                check_owned_input(uri, job.input_s3_uri)
            prefix = checked_prefix(uri, managed_prefixes, needed)
            if not force:
                await check_no_strangers(s3, job, prefix)
        except CleanupRefused as refusal:
            refused.append(str(refusal))
            continue
        result += await delete_prefix(s3, prefix, on_deleted, fence)
    return CleanupOutcome(result, refused)


async def check_no_strangers(s3: S3, job: JobRow, prefix: S3Uri) -> None:
    """CleanupRefused naming the files in an owned folder that the job cannot vouch for."""
    strangers = [
        item.key async for item in s3.list_objects(prefix) if _stranger(job, prefix, item.key)
    ]
    if strangers:
        shown = ", ".join(strangers[:3]) + (
            f" and {len(strangers) - 3} more" if len(strangers) > 3 else ""
        )
        raise CleanupRefused(
            f"{prefix} holds files that are not this job's own ({shown}): result files below "
            "its output folder were never read, and other input files beside its own may be "
            "other jobs' inputs; move them, or `cleanup --force`"
        )


def _stranger(job: JobRow, prefix: S3Uri, key: str) -> bool:
    """A result file below the job's output folder (Bedrock writes them at its top, so this
    one was never read), or, when the job's input is one file, another input file beside it."""
    name = key[len(prefix.key) :] if key.startswith(prefix.key) else ""
    if str(prefix) == job.output_s3_prefix:
        return name.endswith(".jsonl.out") and "/" in name
    input_uri = job.input_s3_uri or ""
    if str(prefix) == job.s3_folder and input_uri.endswith(".jsonl"):
        return key.endswith(".jsonl") and str(prefix.child(key)) != input_uri
    return False

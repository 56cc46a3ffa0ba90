"""What a job owns in S3, the guards that stand before any deletion, and the deletion itself.

The daemon deletes only what it was told it owns: the job's output folder
`{output uri}/{job id}/`, and the input folder named when the job was tracked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog

from batch_poller.aws.s3 import DELETE_BATCH, S3, S3Uri
from batch_poller.store import JobRow

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


def needed_locations(job: JobRow) -> list[str]:
    """What this job still reads until it is cleaned: its results and its input."""
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
    if managed_prefixes and not any(_within(prefix, m) for m in managed_prefixes):
        raise CleanupRefused(f"{uri} is outside [cleanup] managed_prefixes")
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
    root_key = root.key if not root.key or root.key.endswith("/") else root.key + "/"
    # Strictly below the root: a managed root itself is never deleted whole.
    return (
        root.bucket == prefix.bucket
        and prefix.key.startswith(root_key)
        and len(prefix.key) > len(root_key)
    )


async def delete_prefix(s3: S3, prefix: S3Uri) -> CleanupResult:
    """Deletes every object under the prefix, 1,000 keys a request."""
    batch: list[str] = []
    result = CleanupResult()
    async for item in s3.list_objects(prefix):
        if not item.key.startswith(prefix.key):
            log.warning("cleanup_key_outside_prefix", key=item.key, prefix=str(prefix))
            continue
        batch.append(item.key)
        result += CleanupResult(objects=1, bytes=item.size)
        if len(batch) == DELETE_BATCH:
            await s3.delete_keys(prefix.bucket, batch)
            result += CleanupResult(delete_requests=1)
            batch = []
    if batch:
        await s3.delete_keys(prefix.bucket, batch)
        result += CleanupResult(delete_requests=1)
    return result


async def clean_job(
    s3: S3,
    job: JobRow,
    managed_prefixes: Sequence[str],
    others: Iterable[tuple[str, str]] = (),
) -> CleanupResult:
    """Checks every prefix the job owns before deleting any of them, then deletes them."""
    other_prefixes = list(others)
    prefixes = [checked_prefix(p, managed_prefixes, other_prefixes) for p in owned_prefixes(job)]
    result = CleanupResult()
    for prefix in prefixes:
        result += await delete_prefix(s3, prefix)
    return result

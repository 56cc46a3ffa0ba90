"""Jobs Bedrock has and nobody tracks: found by one paged listing, shown, and tracked on
request. A job the submitting code forgot to record still runs and bills; its results are
lost once Bedrock's output is cleaned up by hand or by a lifecycle rule."""

from __future__ import annotations

from datetime import datetime

from batch_poller.aws.bedrock import BedrockJob
from batch_poller.domain import BedrockStatus
from batch_poller.runtime import Runtime
from batch_poller.tracking import Tracked, track_jobs

# Statuses of a job that Bedrock is still working on: it runs, or will, and bills.
RUNNING = frozenset(
    {
        BedrockStatus.SUBMITTED,
        BedrockStatus.VALIDATING,
        BedrockStatus.SCHEDULED,
        BedrockStatus.IN_PROGRESS,
        BedrockStatus.STOPPING,
    }
)
TRACK_AT_ONCE = 50  # ARNs checked and tracked in one call; each is read from Bedrock once


async def untracked_jobs(
    rt: Runtime, *, name_prefix: str | None = None, since: datetime | None = None
) -> list[BedrockJob]:
    """The jobs Bedrock lists (submitted after `since`, named with the prefix) that the
    store does not track, oldest first."""
    listed = [
        job
        async for job in rt.bedrock.list_jobs(submitted_after=since, name_contains=name_prefix)
        # nameContains matches anywhere in the name: a prefix is checked here.
        if name_prefix is None or (job.name or "").startswith(name_prefix)
    ]
    tracked = await rt.store.tracked_arns([job.arn for job in listed])
    return [job for job in listed if job.arn not in tracked]


async def adopt_jobs(rt: Runtime, jobs: list[BedrockJob]) -> list[Tracked]:
    """Tracks the jobs. Their input location was not made here, so it is not owned: cleanup
    deletes only their output folders."""
    adopted: list[Tracked] = []
    for start in range(0, len(jobs), TRACK_AT_ONCE):
        arns = [job.arn for job in jobs[start : start + TRACK_AT_ONCE]]
        adopted += await track_jobs(rt, arns)
    return adopted

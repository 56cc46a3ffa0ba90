"""What each pass does for the jobs this project submits and those nobody tracks: queued and
half-made submissions launched, and once a day a warning for jobs that run untracked."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from batch_poller.adoption import RUNNING, untracked_jobs
from batch_poller.aws.errors import AwsError
from batch_poller.runtime import Runtime
from batch_poller.submission.launch import launch_submissions

log = structlog.get_logger("batch_poller.submit")

WARN_EVERY = timedelta(days=1)
# Bedrock runs a job for at most a week after its submission: older ones no longer run.
UNTRACKED_LOOKBACK = timedelta(days=14)


class SubmissionUpkeep:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._warned_at: datetime | None = None

    async def run(self) -> None:
        """Never fails the pass: Bedrock not answering now is tried again at the next."""
        try:
            await launch_submissions(self.rt)
            if self.rt.settings.poller.warn_untracked:
                await self._warn_untracked()
        except AwsError as error:
            log.warning("submissions_upkeep_failed", error=str(error))

    async def _warn_untracked(self) -> None:
        now = self.rt.clock.now()
        if self._warned_at is not None and now - self._warned_at < WARN_EVERY:
            return
        self._warned_at = now
        found = await untracked_jobs(self.rt, since=now - UNTRACKED_LOOKBACK)
        running = [job for job in found if job.status in RUNNING]
        if running:
            log.warning(
                "untracked_jobs_running",
                count=len(running),
                jobs=[job.name or job.arn for job in running[:10]],
                detail="`batch-poller adopt` tracks them",
            )

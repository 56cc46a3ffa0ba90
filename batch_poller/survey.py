"""A pass's first look at Bedrock: the statuses of every job due for a check from
ListModelInvocationJobs, a page of up to 1,000 jobs a call instead of one GetModelInvocationJob
per job, and the unchanged ones recorded as checked in one statement per status."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import structlog

from batch_poller.aws.bedrock import BedrockJob
from batch_poller.aws.errors import AwsError
from batch_poller.domain import BedrockStatus, Step
from batch_poller.rows import Progress
from batch_poller.runtime import Runtime

log = structlog.get_logger("batch_poller.supervisor")
# From this many jobs to check, one listing is cheaper than a Get each.
LIST_FROM = 2
# Jobs whose statuses one pass reads from a listing at most: a page of ListModelInvocationJobs.
SURVEY_LIMIT = 1000
LISTING_DENIED_PAUSE = timedelta(hours=1)


class Survey:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._listing_denied_until = datetime.min.replace(tzinfo=UTC)

    async def run(
        self, interval: float, exclude: Collection[str] = ()
    ) -> tuple[dict[str, BedrockJob], set[str]]:
        """The statuses of the jobs due for a check, from ListModelInvocationJobs: a page of up
        to 1,000 jobs a call instead of one GetModelInvocationJob per job. The jobs it shows
        unchanged are recorded as checked in one statement each status, not a tracker each; a
        job it does not show (outside its window, on a page not reached) is read with a Get."""
        now = self.rt.clock.now()
        if now < self._listing_denied_until:
            return {}, set()
        store = self.rt.store
        pending = {
            job.batch_job_arn: job
            for job in await store.due_jobs((Step.CHECK,), now, interval, limit=SURVEY_LIMIT)
            if job.batch_job_arn not in exclude
        }
        if len(pending) < LIST_FROM:
            return {}, set()
        dates = [j.submitted_at for j in pending.values()]
        # Strictly after: start a little before the oldest, so it is in the window.
        after = None if None in dates else min(d for d in dates if d) - timedelta(seconds=1)
        found: dict[str, BedrockJob] = {}
        try:
            async for summary in self.rt.bedrock.list_jobs(after):
                if summary.arn in pending:
                    found[summary.arn] = summary
                    if len(found) == len(pending):
                        break
        except AwsError as error:
            if error.code == "AccessDeniedException":
                # Narrow IAM permissions: per-job checks work without listing.
                self._listing_denied_until = self.rt.clock.now() + LISTING_DENIED_PAUSE
                log.warning("listing_denied", detail="checking jobs one by one", error=str(error))
            else:
                log.warning("listing_failed", detail="checking jobs one by one", error=str(error))
            return {}, set()
        by_status: dict[BedrockStatus, dict[str, Progress]] = {}
        for arn, summary in found.items():
            if summary.status is pending[arn].bedrock_status:
                by_status.setdefault(summary.status, {})[arn] = summary.progress
        unchanged = await store.record_unchanged(by_status, self.rt.clock.now())
        return found, unchanged

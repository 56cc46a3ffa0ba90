"""The path of one job, top to bottom: check its status at Bedrock -> (finished) stream its
results into the store -> check them against the manifest -> clean its S3 folders up.

Every arrow is a committed state in the store, so a crash anywhere resumes at the last arrow,
and every step is safe to run twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from enum import StrEnum

import structlog

from batch_poller.aws.bedrock import BedrockJob
from batch_poller.aws.errors import AwsError
from batch_poller.aws.limits import ConcurrencyLimit
from batch_poller.cleanup import clean_job, needed_locations
from batch_poller.clock import sleep_until_set
from batch_poller.domain import (
    BedrockStatus,
    JobStatus,
    Step,
    auto_retry_delay,
    final_status,
    internal_status,
    is_due,
    next_step,
    retry_delay,
)
from batch_poller.ingest import FetchError, IngestContext, Interrupted, ingest_job
from batch_poller.pricing import cost, price_for
from batch_poller.records import LINE_TOO_LONG
from batch_poller.rows import JobRow
from batch_poller.runtime import Runtime
from batch_poller.store import Check, LeaseLost, StaleTransition, StoreError

log = structlog.get_logger("batch_poller.tracker")


class Outcome(StrEnum):
    """What one step did."""

    CHECKED = "checked"
    CHECK_FAILED = "check_failed"
    FETCHED = "fetched"
    FETCH_FAILED = "fetch_failed"
    CLEANED = "cleaned"
    CLEANUP_FAILED = "cleanup_failed"


# A job after its check, as the check left it, and what the check did.
Checked = tuple[JobRow, Outcome]


class JobTracker:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._unpriced_models: set[str] = set()
        # S3 streams at once: a fetch reads a job's output files one after the other.
        self._fetches = ConcurrencyLimit(lambda: runtime.settings.results.max_concurrent_fetches)

    async def advance(
        self,
        job: JobRow,
        *,
        retry_failed_fetch: bool = False,
        listed: BedrockJob | None = None,
        checked: Checked | None = None,
    ) -> list[Outcome]:
        """Takes the job as far along its path as it can go now, one step after the other as
        `domain.next_step` names them; returns what each step did. The caller holds the job's
        lease: every write below is refused (LeaseLost) once it is lost.

        `listed` is the job as this pass's ListModelInvocationJobs saw it, if it did;
        `checked`, its check when the pass made it already, with the others of its batch
        (check_all).
        """
        outcomes: list[Outcome] = []
        with structlog.contextvars.bound_contextvars(job_arn=job.batch_job_arn):
            if checked is None and next_step(job) is Step.CHECK:
                checked = await self.check(job, listed)
            if checked is not None:
                job, outcome = checked
                outcomes.append(outcome)
            if next_step(job) is Step.FETCH and self._fetch_due(job, retry_failed_fetch):
                self._raise_if_stopping()
                job, outcome = await self.fetch(job)
                outcomes.append(outcome)
            if next_step(job) is Step.CLEAN and self.rt.settings.cleanup.enabled:
                self._raise_if_stopping()
                outcomes.append(await self.clean(job))
        return outcomes

    def _fetch_due(self, job: JobRow, retry_failed_fetch: bool) -> bool:
        """A job that failed its fetch waits for its automatic retry (or process-completed)."""
        now = self.rt.clock.now()
        return is_due(
            job, Step.FETCH, now, check_interval_seconds=0, retry_failed_fetch=retry_failed_fetch
        )

    def _raise_if_stopping(self) -> None:
        if self.rt.stopping.is_set():
            raise Interrupted("stopping: the next step waits for the next start")

    # -- check -------------------------------------------------------------------------------

    async def check(self, job: JobRow, listed: BedrockJob | None = None) -> Checked:
        """Reads the job's status and records it: check_all for one job."""
        listing = {} if listed is None else {job.batch_job_arn: listed}
        result = (await self.check_all([job], listing))[job.batch_job_arn]
        if isinstance(result, BaseException):
            raise result
        return result

    async def check_all(
        self, jobs: Sequence[JobRow], listed: Mapping[str, BedrockJob]
    ) -> dict[str, Checked | BaseException]:
        """Checks the jobs that need it: each one's status is read (from the pass's listing
        when it shows no change, else with GetModelInvocationJob, all at once), then every
        answer is recorded in one statement. Each job's result: the job as its check left it
        and what the check did, or what went wrong for it alone (LeaseLost, say); an error
        of the store's is everyone's and is raised."""
        due = [job for job in jobs if next_step(job) is Step.CHECK]
        reads = await asyncio.gather(
            *(self._read_status(job, listed.get(job.batch_job_arn)) for job in due),
            return_exceptions=True,
        )
        results: dict[str, Checked | BaseException] = {}
        checks: list[Check] = []
        for job, read in zip(due, reads, strict=True):
            if isinstance(read, AwsError) and not read.fatal_for_job:
                # Throttling, an outage, expired credentials: none of them is the job's fault.
                log.warning(
                    "status_check_failed",
                    job_arn=job.batch_job_arn,
                    error=str(read),
                    detail="retried next pass",
                )
                results[job.batch_job_arn] = (job, Outcome.CHECK_FAILED)
            elif isinstance(read, AwsError):
                checks.append(Check(job.batch_job_arn, error=str(read)))
            elif isinstance(read, BaseException):
                results[job.batch_job_arn] = read  # a fault of ours, for this job alone
            else:
                checks.append(
                    Check(
                        job.batch_job_arn,
                        read.status,
                        internal_status(read.status),
                        read.message,
                        read.ended_at,
                        read.progress,
                    )
                )
        if not checks:
            return results
        written = await self.rt.store.record_checks(checks, self.rt.clock.now())
        before = {job.batch_job_arn: job for job in due}
        for check in checks:
            fresh = written[check.arn]
            if isinstance(fresh, Exception):
                results[check.arn] = fresh
                continue
            with structlog.contextvars.bound_contextvars(job_arn=check.arn):
                self._log_check(before[check.arn], check)
                await self._log_compile(before[check.arn], fresh)
            outcome = Outcome.CHECKED if check.error is None else Outcome.CHECK_FAILED
            results[check.arn] = (fresh, outcome)
        return results

    async def _read_status(self, job: JobRow, listed: BedrockJob | None) -> BedrockJob:
        if listed is not None and listed.status is job.bedrock_status:
            return listed
        with structlog.contextvars.bound_contextvars(job_arn=job.batch_job_arn):
            return await self.rt.bedrock.get_job(job.batch_job_arn)

    def _log_check(self, job: JobRow, check: Check) -> None:
        if check.error is not None:
            log.error("job_failed", error=check.error, detail="Bedrock refused to describe it")
        elif check.bedrock_status is not job.bedrock_status:
            assert check.bedrock_status is not None
            level = "error" if check.status is JobStatus.FAILED else "info"
            getattr(log, level)(
                "job_status_changed",
                bedrock_status=check.bedrock_status.value,
                previous=job.bedrock_status.value if job.bedrock_status else None,
                message=check.message,
            )

    # -- fetch -------------------------------------------------------------------------------

    async def fetch(self, job: JobRow) -> tuple[JobRow, Outcome]:
        arn = job.batch_job_arn
        assert job.bedrock_status is not None
        partial = job.bedrock_status is BedrockStatus.PARTIALLY_COMPLETED
        settings = self.rt.settings.results
        for attempt in range(1, settings.max_retries + 1):
            try:
                async with self._fetches.slot():
                    totals, manifest = await ingest_job(job, partial, self._ingest_context(job))
            except (Interrupted, LeaseLost, StaleTransition):
                raise
            except Exception as error:  # any failure is an attempt: no job crashes every pass
                if not isinstance(error, FetchError | AwsError | StoreError):
                    log.exception("result_fetch_error")
                now = self.rt.clock.now()
                self.rt.metrics.fetch_failures.inc()
                await self.rt.store.increment_fetch_attempts(arn, str(error), now)
                if attempt == settings.max_retries:
                    delay = auto_retry_delay(
                        job.fetch_failures + 1,
                        settings.auto_retry_after_seconds,
                        settings.auto_retry_max_seconds,
                    )
                    retry_at = None if delay is None else now + timedelta(seconds=delay)
                    log.error(
                        "result_fetch_failed",
                        attempts=attempt,
                        error=str(error),
                        retry_at=None if retry_at is None else retry_at.isoformat(),
                    )
                    failed = await self.rt.store.mark_fetch_failed(arn, str(error), now, retry_at)
                    return failed, Outcome.FETCH_FAILED
                delay = retry_delay(attempt, settings.retry_base_seconds)
                log.warning("result_fetch_retry", attempt=attempt, error=str(error), delay=delay)
                await self._pause(delay)
                continue
            status = final_status(job.bedrock_status)
            stored_at = self.rt.clock.now()
            stored = await self.rt.store.mark_results_fetched(arn, totals, status, stored_at)
            if job.completed_at is not None:
                waited = (stored_at - job.completed_at).total_seconds()
                via = "events" if self.rt.settings.events.enabled else "polling"
                self.rt.metrics.completion_to_stored.labels(via).observe(max(waited, 0.0))
            if manifest.success == 0:
                log.warning("job_completed_without_successes", records=manifest.total)
            if partial:
                log.warning(
                    "job_partially_completed", unprocessed=manifest.total - manifest.processed
                )
            log.info(
                "results_stored",
                records=totals.total,
                ok=totals.ok,
                errors=totals.error,
                input_tokens=totals.input_tokens,
                output_tokens=totals.output_tokens,
                cost=None if totals.cost is None else f"{totals.cost:f}",
            )
            await self._log_compile(job, stored)
            return stored, Outcome.FETCHED
        raise AssertionError("max_retries is at least 1")

    def _ingest_context(self, job: JobRow) -> IngestContext:
        price = price_for(job.model_id, self.rt.settings.pricing)
        if price is None and job.model_id and job.model_id not in self._unpriced_models:
            self._unpriced_models.add(job.model_id)
            log.warning("model_has_no_price", model_id=job.model_id, detail="cost left empty")
        return IngestContext(
            s3=self.rt.s3,
            store=self.rt.store,
            clock=self.rt.clock,
            settings=self.rt.settings.results,
            stopping=self.rt.stopping,
            cost_of=None if price is None else (lambda i, o: cost(price, i, o)),
            metrics=self.rt.metrics,
        )

    async def _pause(self, seconds: float) -> None:
        """Waits between attempts, unless the daemon is stopping."""
        await sleep_until_set(self.rt.clock, seconds, self.rt.stopping)
        if self.rt.stopping.is_set():
            raise Interrupted("stopped between fetch attempts")

    # -- cleanup -----------------------------------------------------------------------------

    async def clean(self, job: JobRow, *, force: bool = False) -> Outcome:
        """Deletes the job's folders. A job with lines too long to store whole keeps them,
        unless forced: those lines exist nowhere else; so does a folder holding files that are
        not the job's own (`cleanup.check_no_strangers`)."""
        arn = job.batch_job_arn
        # Read again under the lease: the caller's copy may be older than its claim.
        job = await self._reload(job)
        if job.cleanup_completed_at is not None:
            return Outcome.CLEANED
        totals = await self.rt.store.record_counts(arn)
        too_long = totals.by_error_code.get(LINE_TOO_LONG, 0)
        if too_long and not force:
            return await self._cleanup_refused(
                job,
                f"{too_long} result lines were longer than [results] max_line_bytes and exist "
                "whole only in S3: keep the files, or `cleanup --force` to delete them",
            )
        others = [
            (other.batch_job_arn, location)
            for other in await self.rt.store.list_jobs_not_cleaned()
            if other.batch_job_arn != arn
            for location in needed_locations(other)
        ]

        async def count(freed: int) -> None:
            await self.rt.store.add_bytes_freed(arn, freed, self.rt.clock.now())
            self.rt.metrics.bytes_freed.inc(freed)

        async def fence() -> None:
            # Deleting in S3 is outside any transaction: the lease is checked, and renewed,
            # right before every request, after the listing it deletes from.
            await self.rt.store.hold(arn, Step.CLEAN, self.rt.clock.now())

        # The stored results are what makes deleting the S3 copy safe: they must be in the file.
        self.rt.store.check_database_file()
        try:
            outcome = await clean_job(
                self.rt.s3,
                job,
                self.rt.settings.cleanup.managed_prefixes,
                others,
                count,
                fence=fence,
                force=force,
            )
        except AwsError as error:
            return await self._cleanup_refused(job, str(error))
        if outcome.refused:
            return await self._cleanup_refused(job, "; ".join(outcome.refused))
        await self.rt.store.mark_cleanup_completed(arn, self.rt.clock.now())
        self.rt.metrics.cleanups.labels("done").inc()
        log.info(
            "cleanup_completed", objects=outcome.result.objects, bytes_freed=outcome.result.bytes
        )
        return Outcome.CLEANED

    async def _cleanup_refused(self, job: JobRow, why: str) -> Outcome:
        now = self.rt.clock.now()
        attempts = await self.rt.store.record_cleanup_error(job.batch_job_arn, why, now)
        self.rt.metrics.cleanups.labels("failed").inc()
        log.error("cleanup_failed", error=why, attempts=attempts)
        return Outcome.CLEANUP_FAILED

    async def _log_compile(self, before: JobRow, after: JobRow) -> None:
        """When the step that made `after` of `before` settled the job and so compiled its
        group, that is logged."""
        compiled_now = before.group_compiled_at is None and after.group_compiled_at is not None
        if compiled_now and after.group_name is not None:
            group = await self.rt.store.get_group(after.group_name)
            log.info(
                "group_compiled",
                group=after.group_name,
                status=None if group is None else group.status.value,
                records=None if group is None else group.total_records,
            )

    async def _reload(self, job: JobRow) -> JobRow:
        fresh = await self.rt.store.get_job(job.batch_job_arn)
        assert fresh is not None, "a tracked job is never deleted"
        return fresh

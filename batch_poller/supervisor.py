"""The daemon's loop: every interval it starts a pass that gathers the jobs that can move on,
leases them, and runs one tracker coroutine per job. A long fetch does not hold the next pass
up: passes overlap, and a job already being worked on is left to the pass that has it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from batch_poller.aws.bedrock import BedrockJob
from batch_poller.aws.errors import AwsError
from batch_poller.aws.limits import ConcurrencyLimit
from batch_poller.health import PassHealth, describe_pass_error, is_expected_failure
from batch_poller.ingest import Interrupted
from batch_poller.runtime import Runtime
from batch_poller.store import JobRow, StoreError
from batch_poller.tracker import JobTracker, Step, awaiting_check

log = structlog.get_logger("batch_poller.supervisor")
LEASE = timedelta(minutes=5)
# From this many jobs to check, one listing is cheaper than a Get each.
LIST_FROM = 2
LISTING_DENIED_PAUSE = timedelta(hours=1)


def daemon_owner() -> str:
    """The lease owner of `batch-poller run` on this host. It is the same after a restart, so a
    restarted daemon takes its leases back at once instead of waiting for them to run out."""
    return f"batch-poller@{socket.gethostname()}"


def one_off_owner() -> str:
    """The lease owner of a one-off command, distinct from a daemon running beside it."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Held:
    """A job the pass wanted that another process holds the lease on."""

    arn: str
    owner: str | None
    until: datetime | None

    def as_dict(self) -> dict[str, str | None]:
        until = None if self.until is None else self.until.isoformat()
        return {"job": self.arn, "leased_by": self.owner, "until": until}


@dataclass(frozen=True)
class PassReport:
    jobs: int
    steps: Counter[Step] = field(default_factory=Counter)
    interrupted: int = 0
    crashed: int = 0
    held: tuple[Held, ...] = ()

    def as_dict(self) -> dict[str, int]:
        return {
            "jobs": self.jobs,
            **{step.value: self.steps.get(step, 0) for step in Step},
            "interrupted": self.interrupted,
            "crashed": self.crashed,
            "held": len(self.held),
        }


class Supervisor:
    def __init__(self, runtime: Runtime, tracker: JobTracker, owner: str | None = None) -> None:
        self.rt = runtime
        self.tracker = tracker
        # Names this process in the leases it takes on jobs.
        self.owner = owner or one_off_owner()
        self.paused = not runtime.settings.poller.enabled
        self.last_pass_at: datetime | None = None
        self.next_pass_at: datetime | None = None
        self.passes = 0
        self.in_flight: set[str] = set()
        # Whether the loop's passes succeed: /healthz, the status and the watchdog read it.
        self.health = PassHealth()
        # Told about every pass (the daemon updates systemd's STATUS= from it).
        self.after_pass: Callable[[PassReport], Awaitable[None]] | None = None
        self._wake = asyncio.Event()
        self._listing_denied_until = datetime.min.replace(tzinfo=UTC)
        self._limit = ConcurrencyLimit(lambda: runtime.settings.poller.max_concurrent_jobs)
        self._passes: set[asyncio.Task[Any]] = set()

    async def run_pass(self, *, check_all: bool = False, retry_failed: bool = False) -> PassReport:
        """One pass: resume half-fetched jobs, check due ones, clean stored ones.

        check_all ignores the check interval (the first pass after a start does this);
        retry_failed also retries RESULT_FETCH_FAILED jobs (process-completed).
        """
        started = time.monotonic()
        jobs, held = await self._take_jobs(check_all, retry_failed)
        try:
            listed = await self._survey(jobs)
            unchanged = await self._record_unchanged(jobs, listed)
            busy = [job for job in jobs if job.batch_job_arn not in unchanged]
            report = await self._run_trackers(busy, retry_failed, listed)
            report.steps[Step.CHECKED] += len(unchanged)
            report = dataclasses.replace(report, jobs=len(jobs), held=held)
        finally:
            arns = [job.batch_job_arn for job in jobs]
            self.in_flight.difference_update(arns)
            await self.rt.store.leases.release(arns, self.owner)
        self.last_pass_at = self.rt.clock.now()
        self.passes += 1
        seconds = time.monotonic() - started
        self.rt.metrics.passes.inc()
        self.rt.metrics.pass_seconds.observe(seconds)
        log.debug("pass_done", seconds=round(seconds, 3), **report.as_dict())
        if self.after_pass is not None:
            await self.after_pass(report)
        return report

    async def _take_jobs(
        self, check_all: bool, retry_failed: bool
    ) -> tuple[list[JobRow], tuple[Held, ...]]:
        """The jobs this pass works on: wanted, not in another pass, and leased to us; and the
        wanted jobs another process holds, so that a pass left with nothing can say why."""
        store = self.rt.store
        # A database file deleted under the daemon, or one that refuses writes, fails the pass
        # (and so its health) at once, the same way every time: a pass with nothing to claim
        # must not look healthy for having had nothing to write.
        store.check_database_file()
        await store.check_writable()
        interval = 0.0 if check_all else self.rt.settings.poller.check_interval_seconds
        now = self.rt.clock.now()
        groups = [
            await store.get_jobs_needing_fetch(),
            await store.get_pending_batch_jobs_for_polling(interval, now),
            await store.get_batch_jobs_pending_cleanup(),
        ]
        # Failed fetches are retried when asked, and by themselves once their retry is due.
        groups.append(await store.get_fetch_failed_jobs(due_at=None if retry_failed else now))
        wanted: dict[str, JobRow] = {}
        for group in groups:
            for job in group:
                if job.batch_job_arn not in self.in_flight:
                    wanted.setdefault(job.batch_job_arn, job)
        # Reserved here before the next await, so an overlapping pass cannot take them too.
        self.in_flight.update(wanted)
        leased: set[str] = set()
        try:
            leased = await store.leases.claim(wanted, self.owner, now + LEASE, now)
            # Read again now that they are ours: a pass that finished while this one was
            # reading may have moved them on; work starts from what is stored.
            jobs = await store.get_jobs(sorted(leased))
        except BaseException:
            self.in_flight.difference_update(wanted)
            await store.leases.release(leased, self.owner)
            raise
        self.in_flight.difference_update(set(wanted) - leased)
        others = await store.get_jobs(sorted(set(wanted) - leased))
        return jobs, tuple(Held(j.batch_job_arn, j.claimed_by, j.claimed_until) for j in others)

    async def _survey(self, jobs: list[JobRow]) -> dict[str, BedrockJob]:
        """The statuses of the jobs to check, from ListModelInvocationJobs: a page of up to
        1,000 jobs a call instead of one GetModelInvocationJob per job. A job the listing does
        not show (outside its window, on a page not reached) is read with a Get as before."""
        pending = {j.batch_job_arn: j for j in jobs if awaiting_check(j)}
        if len(pending) < LIST_FROM or self.rt.clock.now() < self._listing_denied_until:
            return {}
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
            return {}
        return found

    async def _record_unchanged(
        self, jobs: list[JobRow], listed: dict[str, BedrockJob]
    ) -> set[str]:
        """Jobs the listing shows unchanged, with nothing else to do: their check is one
        statement for all of them, not a tracker each."""
        unchanged = {
            job.batch_job_arn
            for job in jobs
            if job.batch_job_arn in listed
            and listed[job.batch_job_arn].status is job.bedrock_status
            and awaiting_check(job)
        }
        await self.rt.store.mark_checked(sorted(unchanged), self.rt.clock.now())
        return unchanged

    async def _run_trackers(
        self, jobs: list[JobRow], retry_failed: bool, listed: dict[str, BedrockJob]
    ) -> PassReport:
        steps: Counter[Step] = Counter()
        interrupted = crashed = 0

        async def one(job: JobRow) -> None:
            nonlocal interrupted, crashed
            async with self._limit.slot():
                if self.rt.stopping.is_set():
                    return
                try:
                    steps.update(
                        await self.tracker.advance(
                            job,
                            retry_failed_fetch=retry_failed,
                            listed=listed.get(job.batch_job_arn),
                        )
                    )
                except Interrupted:
                    interrupted += 1
                    log.info("job_interrupted", job_arn=job.batch_job_arn)
                except Exception as error:  # one job's failure must not stop the others
                    crashed += 1
                    if is_expected_failure(error):
                        # The database or AWS failed: a line, not a traceback per job.
                        log.error(
                            "job_step_failed",
                            job_arn=job.batch_job_arn,
                            error=describe_pass_error(error),
                        )
                    else:
                        log.exception("job_step_crashed", job_arn=job.batch_job_arn)

        heartbeat = asyncio.create_task(self._extend_leases([j.batch_job_arn for j in jobs]))
        try:
            async with asyncio.TaskGroup() as group:
                for job in jobs:
                    group.create_task(one(job))
        finally:
            heartbeat.cancel()
        return PassReport(len(jobs), steps, interrupted, crashed)

    async def _extend_leases(self, arns: list[str]) -> None:
        """Keeps this pass's leases alive while its jobs are worked on: a fetch can take long."""
        while arns:
            await asyncio.sleep(LEASE.total_seconds() / 3)
            lost = set(arns) - await self.rt.store.leases.extend(
                arns, self.owner, self.rt.clock.now() + LEASE
            )
            if lost:
                log.warning("leases_lost", jobs=sorted(lost))

    # -- the loop ----------------------------------------------------------------------------

    def wake(self) -> None:
        """Start the next pass now (a reload, a resume, or a request for one)."""
        self._wake.set()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.wake()

    async def run(self) -> None:
        """Passes until the daemon stops. The first pass checks every unfinished job at once."""
        first = True
        while not self.rt.stopping.is_set():
            self._wake.clear()  # a wake-up from now on asks for one more pass
            if not self.paused:
                self._start_pass(check_all=first)
                first = False
            interval = self.rt.settings.poller.interval_seconds
            self.next_pass_at = self.rt.clock.now() + timedelta(seconds=interval)
            await self._sleep(interval)
        if self._passes:
            await asyncio.wait(self._passes)

    def _start_pass(self, *, check_all: bool) -> None:
        async def guarded() -> None:
            try:
                await self.run_pass(check_all=check_all)
            except Exception as error:  # the store or AWS was unreachable for a whole pass
                self.health.pass_failed(error, self.rt.clock.now())
                if isinstance(error, StoreError):
                    await self.rt.store.reopen_connections()
            else:
                self.health.pass_succeeded(self.rt.clock.now())

        task = asyncio.create_task(guarded(), name="pass")
        self._passes.add(task)
        task.add_done_callback(self._passes.discard)

    async def _sleep(self, seconds: float) -> None:
        waits = [
            asyncio.ensure_future(self.rt.clock.sleep(seconds)),
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self.rt.stopping.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

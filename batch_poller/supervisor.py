"""The daemon's loop: every interval it gathers the jobs that can move on, runs one tracker
coroutine per job (bounded), and sleeps until the next pass, a wake-up or a stop."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from batch_poller.ingest import Interrupted
from batch_poller.runtime import Runtime
from batch_poller.store import JobRow
from batch_poller.tracker import JobTracker, Step

log = structlog.get_logger("batch_poller.supervisor")


@dataclass(frozen=True)
class PassReport:
    jobs: int
    steps: Counter[Step] = field(default_factory=Counter)
    interrupted: int = 0
    crashed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "jobs": self.jobs,
            **{step.value: self.steps.get(step, 0) for step in Step},
            "interrupted": self.interrupted,
            "crashed": self.crashed,
        }


class Supervisor:
    def __init__(self, runtime: Runtime, tracker: JobTracker) -> None:
        self.rt = runtime
        self.tracker = tracker
        self.paused = not runtime.settings.poller.enabled
        self.last_pass_at: datetime | None = None
        self.next_pass_at: datetime | None = None
        self.passes = 0
        self.in_flight: set[str] = set()
        self._wake = asyncio.Event()
        self._pass_lock = asyncio.Lock()
        # Told about every pass (the daemon updates systemd's STATUS= from it).
        self.after_pass: Callable[[PassReport], Awaitable[None]] | None = None

    async def run_pass(self, *, check_all: bool = False, retry_failed: bool = False) -> PassReport:
        """One pass: resume half-fetched jobs, check due ones, clean stored ones.

        check_all ignores the check interval (the first pass after a start does this);
        retry_failed also retries RESULT_FETCH_FAILED jobs (process-completed).
        """
        async with self._pass_lock:
            started = time.monotonic()
            jobs = await self._gather_jobs(check_all, retry_failed)
            report = await self._run_trackers(jobs, retry_failed)
            self.last_pass_at = self.rt.clock.now()
            self.passes += 1
            log.debug("pass_done", seconds=round(time.monotonic() - started, 3), **report.as_dict())
        if self.after_pass is not None:
            await self.after_pass(report)
        return report

    async def _gather_jobs(self, check_all: bool, retry_failed: bool) -> list[JobRow]:
        store = self.rt.store
        poller = self.rt.settings.poller
        interval = 0.0 if check_all else poller.check_interval_seconds
        groups = [
            await store.get_jobs_needing_fetch(),
            await store.get_pending_batch_jobs_for_polling(interval, self.rt.clock.now()),
            await store.get_batch_jobs_pending_cleanup(),
        ]
        if retry_failed:
            groups.append(await store.get_fetch_failed_jobs())
        unique: dict[str, JobRow] = {}
        for group in groups:
            for job in group:
                if job.batch_job_arn not in self.in_flight:
                    unique.setdefault(job.batch_job_arn, job)
        return list(unique.values())

    async def _run_trackers(self, jobs: list[JobRow], retry_failed: bool) -> PassReport:
        limit = asyncio.Semaphore(self.rt.settings.poller.max_concurrent_jobs)
        steps: Counter[Step] = Counter()
        interrupted = crashed = 0

        async def one(job: JobRow) -> None:
            nonlocal interrupted, crashed
            async with limit:
                if self.rt.stopping.is_set():
                    return
                self.in_flight.add(job.batch_job_arn)
                try:
                    steps.update(await self.tracker.advance(job, retry_failed_fetch=retry_failed))
                except Interrupted:
                    interrupted += 1
                    log.info("job_interrupted", job_arn=job.batch_job_arn)
                except Exception:  # one job's bug must not stop the others
                    crashed += 1
                    log.exception("job_step_crashed", job_arn=job.batch_job_arn)
                finally:
                    self.in_flight.discard(job.batch_job_arn)

        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(one(job))
        return PassReport(len(jobs), steps, interrupted, crashed)

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
            self._wake.clear()  # a wake-up during the pass below asks for one more
            if not self.paused:
                try:
                    await self.run_pass(check_all=first)
                    first = False
                except Exception:  # the store or AWS was unreachable for a whole pass
                    log.exception("pass_failed")
            interval = self.rt.settings.poller.interval_seconds
            self.next_pass_at = self.rt.clock.now() + timedelta(seconds=interval)
            await self._sleep(interval)

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

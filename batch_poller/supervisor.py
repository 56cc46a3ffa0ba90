"""The daemon's loop: every interval it starts a pass. A pass first reads the statuses of the
jobs due for a check with one listing, and records the unchanged ones in one statement; then it
claims due jobs in batches, only as many as it has free slots for, checks each batch's jobs
together, and runs one tracker coroutine per job, claiming more as slots free up until nothing
is due. Passes overlap and share the slots; a job is worked on only under this process's lease,
which is renewed while the work goes on and given up with the others of its batch."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from batch_poller.aws.bedrock import BedrockJob
from batch_poller.clock import sleep_until_set
from batch_poller.config import Settings
from batch_poller.domain import Step, next_step
from batch_poller.events.counts import EventCounts
from batch_poller.health import PassHealth, describe_pass_error, is_expected_failure
from batch_poller.ingest import Interrupted
from batch_poller.rows import JobRow
from batch_poller.runtime import Runtime
from batch_poller.slots import Slots
from batch_poller.store import LeaseLost, StaleTransition, StoreError
from batch_poller.submission.upkeep import SubmissionUpkeep
from batch_poller.survey import Survey
from batch_poller.tracker import Checked, JobTracker, Outcome

log = structlog.get_logger("batch_poller.supervisor")
# A pass that has worked on this many jobs leaves the rest to the next one, so its list of
# jobs already done (excluded from its claims) stays small.
PASS_JOB_LIMIT = 5000
# How often, in real time, the lease keeper looks at the injected clock to see whether a third
# of the lease has gone by. Only the clock decides; this is how soon it is asked.
LEASE_TICK_SECONDS = 1.0


def pass_interval(settings: Settings, *, events: bool) -> float:
    """Seconds between passes: with an event consumer running, the passes are the safety net
    behind it."""
    if events:
        return settings.events.fallback_interval_seconds
    return settings.poller.interval_seconds


def replica_liveness(settings: Settings) -> timedelta:
    """A process seen within this long counts as live: it beats at every pass and while it
    renews leases."""
    poller = settings.poller
    return timedelta(seconds=max(poller.lease_seconds, 3 * poller.interval_seconds))


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
    steps: Counter[Outcome] = field(default_factory=Counter)
    interrupted: int = 0
    crashed: int = 0
    held: tuple[Held, ...] = ()
    # Jobs given up half-way because another process took their lease over.
    lost: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "jobs": self.jobs,
            **{outcome.value: self.steps.get(outcome, 0) for outcome in Outcome},
            "interrupted": self.interrupted,
            "crashed": self.crashed,
            "held": len(self.held),
            "lost": self.lost,
        }


@dataclass
class _Tally:
    jobs: int = 0
    steps: Counter[Outcome] = field(default_factory=Counter)
    interrupted: int = 0
    crashed: int = 0
    lost: int = 0


class JobHeld(Exception):
    """A job asked for by name is being worked on by a pass (of this process or another)."""

    def __init__(self, job: JobRow) -> None:
        until = "" if job.claimed_until is None else f" until {job.claimed_until.isoformat()}"
        super().__init__(
            f"{job.batch_job_arn} is being worked on by {job.claimed_by}{until}: try again then"
        )


class Supervisor:
    def __init__(self, runtime: Runtime, tracker: JobTracker, role: str = "command") -> None:
        self.rt = runtime
        self.tracker = tracker
        # "daemon" or "command": how this process shows among the replicas.
        self.role = role
        self.paused = not runtime.settings.poller.enabled
        self.last_pass_at: datetime | None = None
        self.next_pass_at: datetime | None = None
        self.passes = 0
        self.in_flight: set[str] = set()
        # What the event consumer beside the loop has seen, when one runs: the passes slow to
        # [events] fallback_interval_seconds.
        self.events: EventCounts | None = None
        # Whether the loop's passes succeed: /healthz, the status and the watchdog read it.
        self.health = PassHealth()
        # Told about every pass (the daemon updates systemd's STATUS= from it).
        self.after_pass: Callable[[PassReport], Awaitable[None]] | None = None
        self._wake = asyncio.Event()
        self._survey = Survey(runtime)
        self._submissions = SubmissionUpkeep(runtime)
        self._slots = Slots(lambda: runtime.settings.poller.max_concurrent_jobs)
        self._passes: set[asyncio.Task[Any]] = set()
        self._joined = False
        # Real seconds between the lease keeper's looks at the injected clock.
        self.lease_tick_seconds = LEASE_TICK_SECONDS

    @property
    def owner(self) -> str:
        """The name this process takes leases under."""
        return self.rt.store.owner

    async def run_pass(self, *, check_all: bool = False, retry_failed: bool = False) -> PassReport:
        """One pass: every job that can move on now, as far as it can go.

        check_all ignores the check interval (the first pass after a start does this);
        retry_failed also retries RESULT_FETCH_FAILED jobs (process-completed).
        """
        started = time.monotonic()
        store = self.rt.store
        # A database file deleted under the daemon, or one that refuses writes, fails the pass
        # (and so its health) at once, the same way every time: a pass with nothing to claim
        # must not look healthy for having had nothing to write.
        store.check_database_file()
        await store.check_writable()
        await self._join()
        await self._submissions.run()
        store.set_lease(timedelta(seconds=self.rt.settings.poller.lease_seconds))
        interval = 0.0 if check_all else self.rt.settings.poller.check_interval_seconds
        listed, unchanged = await self._survey.run(interval, exclude=self.in_flight)
        await self._compile_groups()
        tally = await self._drain(interval, retry_failed, listed, set(unchanged))
        tally.steps[Outcome.CHECKED] += len(unchanged)
        held = await self._held(interval, retry_failed)
        report = PassReport(
            jobs=tally.jobs + len(unchanged),
            steps=tally.steps,
            interrupted=tally.interrupted,
            crashed=tally.crashed,
            held=held,
            lost=tally.lost,
        )
        self.last_pass_at = self.rt.clock.now()
        await store.replicas.beat(self.last_pass_at, passed=True)
        self.passes += 1
        seconds = time.monotonic() - started
        self.rt.metrics.passes.inc()
        self.rt.metrics.pass_seconds.observe(seconds)
        self.rt.metrics.last_successful_pass.set(self.last_pass_at.timestamp())
        log.debug("pass_done", seconds=round(seconds, 3), **report.as_dict())
        if self.after_pass is not None:
            await self.after_pass(report)
        return report

    async def _compile_groups(self) -> None:
        """A sealed group whose jobs have all settled is compiled by the transaction of its
        last settle; this catches one that none reached, before the drain cleans its jobs."""
        for name in await self.rt.store.compile_ready_groups(self.rt.clock.now()):
            log.info("group_compiled", group=name, detail="by the pass")

    async def _join(self) -> None:
        """Registers this process among the replicas (once), and frees at once the leases of
        processes on this machine that are gone (the one it replaced after a crash; one that
        died since), instead of waiting for them to run out."""
        now = self.rt.clock.now()
        if not self._joined:
            await self.rt.store.replicas.join(self.role, now)
            self._joined = True
        dead = await self.rt.store.replicas.free_dead_neighbours(now)
        if dead:
            log.info("dead_replicas_released", owners=dead, detail="their leases freed")

    async def _drain(
        self,
        interval: float,
        retry_failed: bool,
        listed: dict[str, BedrockJob],
        done: set[str],
    ) -> _Tally:
        """Claims due jobs in batches as slots free up and works on each once, until nothing
        due is left. Each batch costs its own few statements, not a few a job: one claim, one
        for the checks of its jobs that need one (made together, tracker.check_all), and one
        giving up the leases of the jobs done with since the claim before, which are let go
        just before the next claim and when the pass ends. A claim that came back short found
        every due job: the next waits until nothing runs (the jobs' steps may have made others
        due, a group's last settle its jobs' cleanups)."""
        tally = _Tally()
        running: dict[asyncio.Task[None], str] = {}
        mine: set[str] = set()  # the jobs being worked on, whose leases the keeper renews
        finished: set[str] = set()  # worked on, their leases still held
        more = True
        keeper = asyncio.create_task(self.keep_leases(mine))
        try:
            while not self.rt.stopping.is_set() and len(done) < PASS_JOB_LIMIT:
                taken = self._slots.take_free() if more or not running else 0
                # Claim in batches: when half the slots are free, or when nothing runs.
                if taken and (running and taken < self._slots.half()):
                    self._slots.give_back(taken)
                    taken = 0
                jobs: list[JobRow] = []
                if taken:
                    await self._release(finished)
                    finished.clear()
                    jobs = await self._claim(taken, interval, retry_failed, done)
                    more = len(jobs) == taken
                    self._slots.give_back(taken - len(jobs))
                checks = self._check(jobs, listed)
                for job in jobs:
                    done.add(job.batch_job_arn)
                    mine.add(job.batch_job_arn)
                    self.in_flight.add(job.batch_job_arn)
                    work = self._work(job, retry_failed, listed, checks, tally)
                    running[asyncio.create_task(work)] = job.batch_job_arn
                tally.jobs += len(jobs)
                if not running:
                    break
                ended, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in ended:
                    arn = running.pop(task)
                    mine.discard(arn)
                    finished.add(arn)
        finally:
            if running:
                await asyncio.wait(running)
                finished.update(running.values())
            keeper.cancel()
            await self._release(finished)
        return tally

    async def _claim(
        self, count: int, interval: float, retry_failed: bool, done: Collection[str]
    ) -> list[JobRow]:
        try:
            return await self.rt.store.leases.claim(
                count,
                self.rt.clock.now(),
                check_interval_seconds=interval,
                retry_failed_fetch=retry_failed,
                exclude=set(done) | self.in_flight,
            )
        except BaseException:
            self._slots.give_back(count)
            raise

    def _check(
        self, jobs: list[JobRow], listed: dict[str, BedrockJob]
    ) -> asyncio.Future[dict[str, Checked | BaseException]] | None:
        """The checks of a claimed batch, made together while its jobs' tasks wait for them
        (None: none of its jobs needs one)."""
        if self.rt.stopping.is_set() or not any(next_step(j) is Step.CHECK for j in jobs):
            return None
        checks = asyncio.ensure_future(self.tracker.check_all(jobs, listed))
        # Every job's task takes its result, or the error, unless it stopped first.
        checks.add_done_callback(lambda f: f.cancelled() or f.exception())
        return checks

    async def _work(
        self,
        job: JobRow,
        retry_failed: bool,
        listed: dict[str, BedrockJob],
        checks: asyncio.Future[dict[str, Checked | BaseException]] | None,
        tally: _Tally,
    ) -> None:
        arn = job.batch_job_arn
        try:
            if self.rt.stopping.is_set():
                return
            checked = None if checks is None else (await asyncio.shield(checks)).get(arn)
            if isinstance(checked, BaseException):
                raise checked
            tally.steps.update(
                await self.tracker.advance(
                    job, retry_failed_fetch=retry_failed, listed=listed.get(arn), checked=checked
                )
            )
        except Interrupted:
            tally.interrupted += 1
            log.info("job_interrupted", job_arn=arn)
        except (LeaseLost, StaleTransition) as lost:
            # Another process has the job now: nothing more is written or deleted for it here.
            tally.lost += 1
            self.rt.metrics.leases_lost.inc()
            log.warning("lease_lost", job_arn=arn, error=str(lost))
        except Exception as error:  # one job's failure must not stop the others
            tally.crashed += 1
            if is_expected_failure(error):
                # The database or AWS failed: a line, not a traceback per job.
                log.error("job_step_failed", job_arn=arn, error=describe_pass_error(error))
            else:
                log.exception("job_step_crashed", job_arn=arn)
        finally:
            # The job stays in flight, so no overlapping pass claims it, until its lease is
            # given up (_release).
            self._slots.give_back(1)

    async def _release(self, arns: set[str]) -> None:
        """Gives up the leases of jobs worked on, in one statement; they are no longer in
        flight, even if that fails (the leases then run out by themselves, and a pass of this
        process may claim them again before)."""
        if not arns:
            return
        try:
            await self.rt.store.leases.release(arns)
        except StoreError as error:
            # The lease runs out by itself; the job only waits for it.
            log.warning("lease_release_failed", jobs=sorted(arns), error=str(error))
        finally:
            self.in_flight.difference_update(arns)

    async def keep_leases(self, arns: set[str]) -> None:
        """Renews the leases on `arns` (a live set: a pass adds and removes its jobs) once a
        third of the lease has gone by on the injected clock, so a fetch that writes nothing for
        a while (a slow S3 stream) keeps its jobs. Every fenced write renews its job's lease too.
        """
        renewed = self.rt.clock.now()
        while True:
            lease = self.rt.store.tenancy.lease
            # Looked at often enough for any lease length: six times a lease at least.
            await asyncio.sleep(min(self.lease_tick_seconds, lease.total_seconds() / 6))
            now = self.rt.clock.now()
            if not arns or now - renewed < lease / 3:
                continue
            try:
                held = await self.rt.store.leases.extend(set(arns), now)
                await self.rt.store.replicas.beat(now)
            except StoreError as error:
                # Tried again at the next look; the jobs' own writes renew their leases too.
                log.warning("lease_renewal_failed", error=str(error))
                continue
            renewed = now
            if lost := set(arns) - held:
                log.warning("leases_lost", jobs=sorted(lost))

    async def _held(self, interval: float, retry_failed: bool) -> tuple[Held, ...]:
        """Due jobs another process holds, so that a pass left with nothing can say why."""
        now = self.rt.clock.now()
        due = await self.rt.store.due_jobs(
            tuple(Step), now, interval, retry_failed_fetch=retry_failed, limit=100
        )
        return tuple(
            Held(job.batch_job_arn, job.claimed_by, job.claimed_until)
            for job in due
            if job.claimed_by not in (None, self.owner)
            and job.claimed_until is not None
            and job.claimed_until > now
        )

    async def clean_now(self, job: JobRow, *, force: bool) -> Outcome:
        """Cleans one stored job at once (the CLI's and the API's cleanup), under a lease like
        any pass; LeaseLost when another process holds it."""
        await self._join()
        now = self.rt.clock.now()
        claimed = await self.rt.store.leases.claim(
            1,
            now,
            check_interval_seconds=0,
            steps=(Step.CLEAN,),
            only=job.batch_job_arn,
            exclude=self.in_flight,
        )
        if not claimed:
            fresh = await self.rt.store.get_job(job.batch_job_arn) or job
            raise JobHeld(fresh)
        try:
            return await self.tracker.clean(claimed[0], force=force)
        finally:
            await self._release({job.batch_job_arn})

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
            interval = pass_interval(self.rt.settings, events=self.events is not None)
            self.rt.metrics.pass_interval.set(interval)
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
        await sleep_until_set(self.rt.clock, seconds, self._wake, self.rt.stopping)

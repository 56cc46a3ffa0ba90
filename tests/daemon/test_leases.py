"""Leases in the daemon: renewed on the injected clock's terms, spread by bounded claims, and a
job whose lease was taken over is left alone by the process that lost it."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import pytest

from batch_poller.app import build_supervisor
from batch_poller.domain import JobStatus
from batch_poller.runtime import Runtime
from batch_poller.store import LeaseLost
from batch_poller.store.guards import DEFAULT_LEASE as LEASE
from batch_poller.supervisor import Supervisor
from tests.daemon_fixtures import FakeClock
from tests.helpers import lease_to_another

LOOKS = 2000


async def _eventually(condition: Any, what: str) -> None:
    """Waits for an async condition, yielding to the tasks that should make it true."""
    for _ in range(LOOKS):
        if await condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"gave up waiting for {what}")


async def test_leases_are_renewed_once_a_third_of_them_has_gone_by_on_the_injected_clock(
    supervisor: Supervisor, runtime: Runtime, clock: FakeClock, submit: Any
) -> None:
    arn = await submit(3)
    claimed = await runtime.store.leases.claim(1, clock.now(), check_interval_seconds=0, only=arn)
    assert [job.claimed_until for job in claimed] == [clock.now() + LEASE]
    supervisor.lease_tick_seconds = 0.001
    keeper = asyncio.create_task(supervisor.keep_leases({arn}))
    await asyncio.sleep(0)  # the keeper notes when it started
    try:
        clock.current += LEASE / 3 + timedelta(seconds=1)

        async def renewed() -> bool:
            job = await runtime.store.get_job(arn)
            return job is not None and job.claimed_until == clock.now() + LEASE

        await _eventually(renewed, "the lease renewed from the clock's now")
    finally:
        keeper.cancel()


async def test_a_lease_that_ran_out_is_taken_over_and_the_loser_writes_nothing(
    supervisor: Supervisor, runtime: Runtime, clock: FakeClock, control: Any, submit: Any
) -> None:
    arn = await submit(3)
    await control.finish(arn, "Completed")
    start = clock.now()
    mine = await runtime.store.leases.claim(1, start, check_interval_seconds=0, only=arn)
    assert [job.batch_job_arn for job in mine] == [arn]

    # This process froze past its lease; another took the job over.
    clock.current += LEASE + timedelta(seconds=1)
    other = await lease_to_another(runtime.store, arn, clock.now())
    before = await runtime.store.get_job(arn)
    with pytest.raises(LeaseLost, match=re.escape(f"held by {other}")):
        await supervisor.tracker.advance(mine[0])
    after = await runtime.store.get_job(arn)

    assert before == after  # not a column written
    assert await runtime.store.record_ids(arn) == set()


async def test_a_pass_claims_only_as_many_jobs_as_it_has_slots_and_works_them_all(
    make_settings: Any, runtime: Runtime, control: Any, submit: Any
) -> None:
    arns = [await submit(2) for _ in range(5)]
    for arn in arns:
        await control.finish(arn, "Completed")
    runtime.settings = make_settings(poller={"max_concurrent_jobs": 2})
    supervisor = build_supervisor(runtime)
    most_at_once = 0

    async def watch() -> None:
        nonlocal most_at_once
        while True:
            most_at_once = max(most_at_once, len(supervisor.in_flight))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    try:
        report = await supervisor.run_pass()
    finally:
        watcher.cancel()

    jobs = [await runtime.store.get_job(arn) for arn in arns]
    assert report.jobs == 5 and report.steps["fetched"] == 5
    assert 1 <= most_at_once <= 2
    assert all(job is not None and job.status is JobStatus.COMPLETED for job in jobs)
    assert all(job is not None and job.claimed_by is None for job in jobs)  # released

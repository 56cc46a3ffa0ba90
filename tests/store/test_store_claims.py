"""Claims: a process takes a bounded number of due jobs nobody holds, most urgent first, in one
statement, so that two processes claiming at once never get the same job."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from store_testlib import NOW, EngineFactory, arn

from batch_poller.domain import BedrockStatus, JobStatus, Step
from batch_poller.rows import JobRow
from batch_poller.store import JobStore, NewJob, RecordTotals
from batch_poller.store.tables import bedrock_batch_jobs
from tests.helpers import another_process, lease_to_another, leased

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
LEASE = timedelta(minutes=5)  # JobStore's default lease


def names(jobs: Iterable[JobRow]) -> set[str]:
    return {j.batch_job_arn for j in jobs}


async def track(store: JobStore, n: int, step: Step, submitted_minutes_ago: int) -> str:
    """A free job that needs `step`, submitted that many minutes before NOW."""
    submitted = NOW - submitted_minutes_ago * MINUTE
    if step is Step.CHECK:
        await store.track_job(NewJob(arn(n), submitted_at=submitted), NOW)
        return arn(n)
    finished = NewJob(
        arn(n),
        bedrock_status=BedrockStatus.COMPLETED,
        status=JobStatus.IN_PROGRESS,
        submitted_at=submitted,
    )
    await store.track_job(finished, NOW)
    if step is Step.CLEAN:
        async with leased(store, arn(n), NOW):
            await store.mark_results_fetched(arn(n), RecordTotals(), JobStatus.COMPLETED, NOW)
    return arn(n)


async def claim(who: JobStore, limit: int, now: datetime = NOW, **kw: Any) -> set[str]:
    kw.setdefault("check_interval_seconds", 60)
    if "exclude" not in kw:  # as a pass does: not the jobs this process is working on
        kw["exclude"] = await _working_on(who, now)
    jobs = await who.leases.claim(limit, now, **kw)
    assert len(jobs) <= limit
    assert all((j.claimed_by, j.claimed_until) == (who.owner, now + LEASE) for j in jobs)
    return names(jobs)


async def _working_on(who: JobStore, now: datetime) -> set[str]:
    c = bedrock_batch_jobs.c
    query = select(c.batch_job_arn).where(c.claimed_by == who.owner, c.claimed_until > now)
    async with who.engine.connect() as conn:
        return set((await conn.execute(query)).scalars())


async def five_due_jobs(store: JobStore) -> dict[str, str]:
    """Checks submitted first, with arns unlike the order of their submissions."""
    return {
        "check_oldest": await track(store, 3, Step.CHECK, 90),
        "check_middle": await track(store, 1, Step.CHECK, 80),
        "check_newest": await track(store, 2, Step.CHECK, 70),
        "clean": await track(store, 4, Step.CLEAN, 10),
        "fetch": await track(store, 5, Step.FETCH, 5),
    }


async def test_a_claim_takes_the_most_urgent_jobs_up_to_its_limit(store: JobStore) -> None:
    jobs = await five_due_jobs(store)
    second = JobStore(store.engine, another_process())

    assert await claim(store, 2) == {jobs["fetch"], jobs["clean"]}
    assert await claim(second, 2) == {jobs["check_oldest"], jobs["check_middle"]}
    assert await claim(store, 2) == {jobs["check_newest"]}
    assert await claim(second, 2) == set()
    held = {j.batch_job_arn: j.claimed_by for j in await store.list_jobs()}
    assert held == {
        jobs["fetch"]: store.owner,
        jobs["clean"]: store.owner,
        jobs["check_oldest"]: second.owner,
        jobs["check_middle"]: second.owner,
        jobs["check_newest"]: store.owner,
    }


async def test_claims_one_at_a_time_go_fetch_clean_then_oldest_check(store: JobStore) -> None:
    jobs = await five_due_jobs(store)
    order = [await claim(store, 1) for _ in range(6)]
    assert order == [
        {jobs["fetch"]},
        {jobs["clean"]},
        {jobs["check_oldest"]},
        {jobs["check_middle"]},
        {jobs["check_newest"]},
        set(),
    ]
    assert await claim(store, 0) == set()


async def test_a_held_job_is_claimed_only_once_its_lease_ran_out(store: JobStore) -> None:
    job = await track(store, 1, Step.CHECK, 10)
    other = await lease_to_another(store, job, NOW)

    assert await claim(store, 5, NOW + LEASE - SECOND) == set()
    held = await store.get_job(job)
    assert held is not None and held.claimed_by == other
    assert await claim(store, 5, NOW + LEASE) == {job}
    taken = await store.get_job(job)
    assert taken is not None and taken.claimed_by == store.owner
    # Its own live lease is not claimed while it works on the job (the pass excludes it)...
    assert await claim(store, 5, NOW + LEASE + SECOND) == set()
    # ...and is claimed again when it is not (its release failed, say): no waiting for it.
    assert await claim(store, 5, NOW + LEASE + SECOND, exclude=()) == {job}


async def test_claim_excludes_and_only(store: JobStore) -> None:
    jobs = await five_due_jobs(store)
    recent = await track(store, 6, Step.CHECK, 1)
    async with leased(store, recent, NOW - 30 * SECOND):
        await store.record_check(
            recent,
            bedrock_status=BedrockStatus.IN_PROGRESS,
            status=JobStatus.IN_PROGRESS,
            message=None,
            completed_at=None,
            now=NOW - 30 * SECOND,
        )
    other = JobStore(store.engine, another_process())

    excluded = {jobs["fetch"], jobs["check_oldest"]}
    assert await claim(other, 10, exclude=excluded) == set(jobs.values()) - excluded
    await other.leases.release()

    assert await claim(other, 10, only=jobs["check_middle"]) == {jobs["check_middle"]}
    # `only` still takes a job only if it is due and free.
    assert await claim(store, 10, only=recent) == set()  # checked 30 s ago
    assert await claim(store, 10, only=jobs["check_middle"]) == set()  # held by other
    assert await claim(store, 10, only=arn(404)) == set()
    assert await claim(store, 10, only=jobs["fetch"], exclude={jobs["fetch"]}) == set()
    # Once its interval is up, the recent one can be claimed too.
    assert await claim(store, 10, NOW + 30 * SECOND, only=recent) == {recent}


async def test_claim_takes_only_the_steps_asked_for(store: JobStore) -> None:
    jobs = await five_due_jobs(store)
    failed = await track(store, 7, Step.FETCH, 1)
    async with leased(store, failed, NOW):
        await store.mark_fetch_failed(failed, "NoSuchKey", NOW)  # no retry time

    assert await claim(store, 10, steps=[Step.CLEAN]) == {jobs["clean"]}
    # A failed fetch is claimed only when asked for.
    assert await claim(store, 10, steps=[Step.FETCH]) == {jobs["fetch"]}
    assert await claim(store, 10, steps=[Step.FETCH], retry_failed_fetch=True) == {failed}
    assert await claim(store, 10, steps=[Step.CHECK]) == {
        jobs["check_oldest"],
        jobs["check_middle"],
        jobs["check_newest"],
    }


async def test_two_processes_claiming_at_once_get_different_jobs(
    store: JobStore, backend: str, engine_factory: EngineFactory
) -> None:
    if backend != "postgresql":
        pytest.skip("concurrent claims on one database are PostgreSQL's (SKIP LOCKED)")
    due = {await track(store, n, Step.CHECK, n) for n in range(1, 41)}
    one = JobStore(await engine_factory(same_as=store.engine), another_process("one"))
    two = JobStore(await engine_factory(same_as=store.engine), another_process("two"))
    for rounds in range(3):
        # Open each engine's connection first, so that neither claim waits for a connect.
        await asyncio.gather(one.get_job(arn(1)), two.get_job(arn(1)))
        now = NOW + rounds * 2 * LEASE  # every lease of the round before has run out
        first, second = await asyncio.gather(claim(one, 30, now), claim(two, 30, now))
        assert first.isdisjoint(second)
        assert first | second == due
        held = {j.batch_job_arn: j.claimed_by for j in await store.list_jobs(limit=100)}
        assert held == {a: one.owner if a in first else two.owner for a in due}


async def test_a_claim_skips_a_row_another_transaction_has_locked(
    store: JobStore, backend: str, engine_factory: EngineFactory
) -> None:
    if backend != "postgresql":
        pytest.skip("row locks are PostgreSQL's (SQLite locks the whole file)")
    jobs = await five_due_jobs(store)
    holder = await engine_factory(same_as=store.engine)
    async with holder.connect() as conn:
        await conn.begin()
        locked = bedrock_batch_jobs.c.batch_job_arn == jobs["fetch"]
        await conn.execute(select(bedrock_batch_jobs).where(locked).with_for_update())
        # Another process in the middle of a claim or a fenced write holds that row: a claim
        # passes it over at once instead of waiting for it (the bound is only for a failure).
        claiming = asyncio.ensure_future(claim(store, 10))
        finished, _ = await asyncio.wait([claiming], timeout=10)
        await conn.rollback()
    assert finished, "the claim waited for the locked row"
    assert claiming.result() == set(jobs.values()) - {jobs["fetch"]}
    assert await claim(store, 10) == {jobs["fetch"]}

"""Transitions of several jobs at once: one guarded statement writes each job with its own
values, only while this process holds it and it still needs the step; a job refused is told
its reason without keeping the others from being written; the jobs it settles get their events
in the same transaction, however many there are, in one statement."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from store_testlib import NOW, PG_URL, EngineFactory, arn

from batch_poller.domain import BedrockStatus, JobStatus
from batch_poller.rows import JobRow, Progress, RecordTotals
from batch_poller.store import (
    Check,
    JobStore,
    LeaseLost,
    NewJob,
    StaleTransition,
    UnknownJobError,
)
from batch_poller.store.outbox import HookRoute
from batch_poller.store.tables import bedrock_batch_jobs
from tests.helpers import another_process, lease_to_another

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
LATER = NOW + MINUTE


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[Counter[str]]:
    """The statements run on the engine in the block, by their first two words."""
    seen: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen[" ".join(sql.split()[:3])] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def running_jobs(store: JobStore, numbers: range) -> list[str]:
    """Jobs at InProgress, due for their check, leased to the store's process."""
    for n in numbers:
        await store.track_job(
            NewJob(arn(n), bedrock_status=BedrockStatus.IN_PROGRESS, status=JobStatus.IN_PROGRESS),
            NOW,
        )
    claimed = await store.leases.claim(len(numbers), NOW, check_interval_seconds=0)
    assert len(claimed) == len(numbers)
    return [arn(n) for n in numbers]


def completed(job: str, n: int) -> Check:
    return Check(
        job,
        BedrockStatus.COMPLETED,
        JobStatus.IN_PROGRESS,
        message=f"done {n}",
        completed_at=NOW + n * timedelta(seconds=1),
        progress=Progress(n, n),
    )


async def test_checks_of_many_jobs_are_one_statement_each_job_its_own_values(
    store: JobStore,
) -> None:
    jobs = await running_jobs(store, range(1, 21))
    failed = jobs[3]
    checks = [
        completed(job, n) if job != failed else Check(job, error="AccessDenied: not yours")
        for n, job in enumerate(jobs)
    ]

    with statements(store.engine) as seen:
        written = await store.record_checks(checks, LATER)

    assert seen["UPDATE bedrock_batch_jobs SET"] == 1
    assert seen["INSERT INTO events"] == 1  # the one job the checks failed settled
    assert seen["SELECT bedrock_batch_jobs.batch_job_arn, bedrock_batch_jobs.job_id,"] == 0
    for n, job in enumerate(jobs):
        row = written[job]
        assert isinstance(row, JobRow)
        assert row == await store.get_job(job)  # as the write left it, no read needed
        assert row.last_checked_at == LATER and row.claimed_until == LATER + store.tenancy.lease
        if job == failed:
            assert (row.status, row.last_error) == (JobStatus.FAILED, "AccessDenied: not yours")
            assert row.bedrock_status is BedrockStatus.IN_PROGRESS  # kept as it was
            continue
        assert row.bedrock_status is BedrockStatus.COMPLETED
        assert (row.message, row.completed_at) == (f"done {n}", NOW + n * timedelta(seconds=1))
        assert (row.progress_processed, row.progress_total) == (n, n)
    events = await store.outbox.events()
    assert [(e["type"], e["job"]["batch_job_arn"]) for e in events] == [("job.failed", failed)]


async def test_the_statements_of_a_batch_do_not_grow_with_its_jobs(store: JobStore) -> None:
    store.outbox.routes = (HookRoute("one", frozenset({"*"})), HookRoute("two", frozenset({"*"})))
    counts = []
    for numbers in (range(1, 3), range(3, 33)):
        jobs = await running_jobs(store, numbers)
        # Every job fails: each settles, with its event and a delivery for each hook.
        checks = [Check(job, error="ResourceNotFound") for job in jobs]
        with statements(store.engine) as seen:
            written = await store.record_checks(checks, LATER)
        assert all(isinstance(row, JobRow) for row in written.values())
        counts.append(seen)
    assert counts[0] == counts[1]
    assert len(await store.outbox.events()) == 32
    for hook in ("one", "two"):
        assert len(await store.outbox.deliveries(hook=hook)) == 32


async def test_a_job_refused_in_a_batch_is_told_why_and_the_others_are_written(
    store: JobStore,
) -> None:
    jobs = await running_jobs(store, range(1, 6))
    lost, ran_out, moved_on = jobs[0], jobs[1], jobs[2]
    # Another process took one over (its lease had run out); another's own lease ran out;
    # the third finished its check already.
    c = bedrock_batch_jobs.c
    async with store.engine.begin() as conn:
        await conn.execute(
            update(bedrock_batch_jobs)
            .where(c.batch_job_arn.in_([lost, ran_out]))
            .values(claimed_until=NOW)
        )
    other = await lease_to_another(store, lost, LATER)
    await store.record_check(
        moved_on,
        bedrock_status=BedrockStatus.FAILED,
        status=JobStatus.FAILED,
        message="gone",
        completed_at=None,
        now=NOW,
    )
    checks = [completed(job, n) for n, job in enumerate(jobs)] + [completed(arn(99), 99)]

    written = await store.record_checks(checks, LATER)

    assert isinstance(written[lost], LeaseLost) and written[lost].holder == other
    assert isinstance(written[ran_out], LeaseLost) and written[ran_out].holder == store.owner
    assert isinstance(written[moved_on], StaleTransition)
    assert isinstance(written[arn(99)], UnknownJobError)
    for job in jobs[3:]:
        row = written[job]
        assert isinstance(row, JobRow) and row.bedrock_status is BedrockStatus.COMPLETED
    untouched = await store.get_job(lost)
    assert untouched is not None and untouched.bedrock_status is BedrockStatus.IN_PROGRESS
    assert untouched.claimed_by == other


async def test_two_processes_checking_every_job_at_once_write_only_their_own(
    store: JobStore, backend: str, engine_factory: EngineFactory
) -> None:
    if backend != "postgresql":
        pytest.skip("two writers at once on one database are PostgreSQL's")
    for n in range(1, 41):
        await store.track_job(
            NewJob(arn(n), bedrock_status=BedrockStatus.IN_PROGRESS, status=JobStatus.IN_PROGRESS),
            NOW,
        )
    one = JobStore(await engine_factory(same_as=store.engine), another_process("one"))
    two = JobStore(await engine_factory(same_as=store.engine), another_process("two"))
    mine_one, mine_two = await asyncio.gather(
        one.leases.claim(20, NOW, check_interval_seconds=0),
        two.leases.claim(20, NOW, check_interval_seconds=0),
    )
    owners = {job.batch_job_arn: one.owner for job in mine_one}
    owners |= {job.batch_job_arn: two.owner for job in mine_two}
    assert len(owners) == 40
    every = [arn(n) for n in range(1, 41)]

    def checks_by(who: str) -> list[Check]:
        # Each process writes what it would: the other's message, so a stray write shows.
        return [Check(job, BedrockStatus.COMPLETED, JobStatus.IN_PROGRESS, who) for job in every]

    by_one, by_two = await asyncio.gather(
        one.record_checks(checks_by(one.owner), LATER),
        two.record_checks(checks_by(two.owner), LATER),
    )

    for job, owner in owners.items():
        mine, theirs = (by_one, by_two) if owner == one.owner else (by_two, by_one)
        assert isinstance(mine[job], JobRow)
        assert isinstance(theirs[job], LeaseLost)
        stored = await store.get_job(job)
        assert stored is not None and (stored.message, stored.claimed_by) == (owner, owner)


async def test_listen_hears_every_event_of_a_batch_in_order(backend: str, store: JobStore) -> None:
    if backend != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's")
    url = make_url(PG_URL)
    listener = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("batch_poller", lambda *args: heard.put_nowait(args[3]))
    try:
        jobs = await running_jobs(store, range(1, 6))
        await store.record_checks([Check(job, error="gone") for job in jobs], LATER)
        notes = [json.loads(await asyncio.wait_for(heard.get(), 30)) for _ in jobs]
    finally:
        await listener.close()
    assert [note["job"]["batch_job_arn"] for note in notes] == sorted(jobs)
    stored = await store.outbox.events()
    assert [event["id"] for event in stored] == [note["id"] for note in notes]


async def stored_jobs(store: JobStore, numbers: range) -> list[str]:
    """Jobs Bedrock finished, their results to store, leased to the store's process."""
    for n in numbers:
        await store.track_job(
            NewJob(arn(n), bedrock_status=BedrockStatus.COMPLETED, status=JobStatus.IN_PROGRESS),
            NOW,
        )
    claimed = await store.leases.claim(len(numbers), NOW, check_interval_seconds=0)
    assert len(claimed) == len(numbers)
    return [arn(n) for n in numbers]


async def test_fetches_finishing_at_once_settle_together_each_fenced_by_its_lease(
    store: JobStore,
) -> None:
    jobs = await stored_jobs(store, range(1, 13))
    await store.group_jobs(jobs[:2], "pair", NOW, seal=True)
    lost = jobs[5]
    async with store.engine.begin() as conn:
        c = bedrock_batch_jobs.c
        await conn.execute(
            update(bedrock_batch_jobs).where(c.batch_job_arn == lost).values(claimed_until=NOW)
        )
    other = await lease_to_another(store, lost, LATER)

    with statements(store.engine) as seen:
        settled = await asyncio.gather(
            *(
                store.mark_results_fetched(
                    job, RecordTotals(total=n, ok=n), JobStatus.COMPLETED, LATER + n * SECOND
                )
                for n, job in enumerate(jobs)
            ),
            return_exceptions=True,
        )

    assert seen["UPDATE bedrock_batch_jobs SET"] == 1 + 1  # the settle, and the group's jobs
    assert seen["INSERT INTO events"] == 2  # the jobs' events, then the group's
    for n, (job, result) in enumerate(zip(jobs, settled, strict=True)):
        if job == lost:
            assert isinstance(result, LeaseLost) and result.holder == other
            continue
        assert isinstance(result, JobRow) and result == await store.get_job(job)
        assert (result.status, result.total_records) == (JobStatus.COMPLETED, n)
        assert result.results_fetched_at == LATER + n * SECOND
    untouched = await store.get_job(lost)
    assert untouched is not None and untouched.results_fetched_at is None
    events = await store.outbox.events()
    assert sorted(e["job"]["batch_job_arn"] for e in events if e["type"] == "job.settled") == [
        job for job in jobs if job != lost
    ]
    # The group's two jobs settled in one transaction: compiled once, by it.
    assert [e["group"]["name"] for e in events if e["type"] == "group.completed"] == ["pair"]
    group = await store.get_group("pair")
    assert group is not None and group.compiled_at is not None and group.total_records == 1

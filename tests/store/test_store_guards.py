"""Guarded writes: each status change (and each record write) is made by a step, and only by
the process that holds the job's live lease while the job still needs that step. Any other
write is refused with its reason, and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from store_testlib import NOW, arn

from batch_poller.domain import BedrockStatus, JobStatus, Step
from batch_poller.rows import Progress
from batch_poller.store import (
    JobStore,
    LeaseLost,
    NewJob,
    RecordRow,
    RecordTotals,
    StaleTransition,
    UnknownJobError,
)
from batch_poller.store.tables import batch_records, bedrock_batch_jobs
from tests.helpers import another_process, lease_to_another, leased

MINUTE = timedelta(minutes=1)
LEASE = timedelta(minutes=5)  # JobStore's default lease
LATER = NOW + MINUTE

Write = Callable[[JobStore, str, datetime], Awaitable[Any]]


def _record_check(store: JobStore, job: str, now: datetime) -> Awaitable[Any]:
    return store.record_check(
        job,
        bedrock_status=BedrockStatus.STOPPING,
        status=JobStatus.IN_PROGRESS,
        message="stopping",
        completed_at=now,
        now=now,
    )


def _write_records(store: JobStore, job: str, now: datetime) -> Awaitable[Any]:
    return store.write_records(job, [RecordRow("r2", "ok", model_output="2")], now)


WRITES: dict[str, tuple[Step, Write]] = {
    "record_check": (Step.CHECK, _record_check),
    "mark_check_failed": (Step.CHECK, lambda s, j, now: s.mark_check_failed(j, "gone", now)),
    "hold_check": (Step.CHECK, lambda s, j, now: s.hold(j, Step.CHECK, now)),
    "increment_fetch_attempts": (
        Step.FETCH,
        lambda s, j, now: s.increment_fetch_attempts(j, "throttled", now),
    ),
    "mark_fetch_failed": (
        Step.FETCH,
        lambda s, j, now: s.mark_fetch_failed(j, "NoSuchKey", now, retry_at=now + MINUTE),
    ),
    "mark_results_fetched": (
        Step.FETCH,
        lambda s, j, now: s.mark_results_fetched(
            j, RecordTotals(total=2, ok=2), JobStatus.COMPLETED, now
        ),
    ),
    "write_records": (Step.FETCH, _write_records),
    "keep_input_of_line": (
        Step.FETCH,
        lambda s, j, now: s.keep_input_of_line(j, "r1", '{"p": 1}', "cut short", now),
    ),
    "hold_fetch": (Step.FETCH, lambda s, j, now: s.hold(j, Step.FETCH, now)),
    "add_bytes_freed": (Step.CLEAN, lambda s, j, now: s.add_bytes_freed(j, 1024, now)),
    "record_cleanup_error": (
        Step.CLEAN,
        lambda s, j, now: s.record_cleanup_error(j, "AccessDenied", now),
    ),
    "mark_cleanup_completed": (
        Step.CLEAN,
        lambda s, j, now: s.mark_cleanup_completed(j, now),
    ),
    "hold_clean": (Step.CLEAN, lambda s, j, now: s.hold(j, Step.CLEAN, now)),
}


async def job_at(store: JobStore, n: int, step: Step | None) -> str:
    """A job that needs `step` (None: a job cleaned up, that needs nothing), nobody's lease.
    Jobs past their fetch hold one stored record, r1, so a write that got through would show."""
    if step is Step.CHECK:
        await store.track_job(NewJob(arn(n), bedrock_status=BedrockStatus.IN_PROGRESS), NOW)
        return arn(n)
    finished = NewJob(arn(n), bedrock_status=BedrockStatus.COMPLETED, status=JobStatus.IN_PROGRESS)
    await store.track_job(finished, NOW)
    async with leased(store, arn(n), NOW):
        await store.write_records(arn(n), [RecordRow("r1", "error", error_code="X")], NOW)
        if step is not Step.FETCH:
            await store.mark_results_fetched(arn(n), RecordTotals(), JobStatus.COMPLETED, NOW)
        if step is None:
            await store.mark_cleanup_completed(arn(n), NOW)
    return arn(n)


async def snapshot(store: JobStore, job: str) -> tuple[dict[str, Any] | None, list[Any]]:
    """The job's whole row and its records, as stored."""
    async with store.engine.connect() as conn:
        jobs = bedrock_batch_jobs
        row = (await conn.execute(select(jobs).where(jobs.c.batch_job_arn == job))).first()
        records = batch_records
        stored = await conn.execute(
            select(records).where(records.c.batch_job_arn == job).order_by(records.c.record_id)
        )
        return (None if row is None else dict(row._mapping)), [dict(r._mapping) for r in stored]


async def refused(
    store: JobStore, write: Write, job: str, now: datetime, error: type[Exception]
) -> Exception:
    """Runs the write, which must be refused with `error` and change nothing."""
    before = await snapshot(store, job)
    with pytest.raises(error) as caught:
        await write(store, job, now)
    assert await snapshot(store, job) == before
    return caught.value


@pytest.mark.parametrize("name", list(WRITES))
async def test_the_holder_of_the_lease_writes_and_extends_it(store: JobStore, name: str) -> None:
    step, write = WRITES[name]
    job = await job_at(store, 1, step)
    before = await snapshot(store, job)
    async with leased(store, job, NOW):
        await write(store, job, LATER)
        after = await store.get_job(job)
    assert after is not None
    assert (after.claimed_by, after.claimed_until) == (store.owner, LATER + LEASE)
    assert after.updated_at == LATER
    if not name.startswith("hold"):
        assert await snapshot(store, job) != before


@pytest.mark.parametrize("name", list(WRITES))
async def test_a_write_without_a_live_lease_is_refused(store: JobStore, name: str) -> None:
    step, write = WRITES[name]

    # Nobody holds the job.
    free = await job_at(store, 1, step)
    lost = await refused(store, write, free, NOW, LeaseLost)
    assert isinstance(lost, LeaseLost) and (lost.arn, lost.holder) == (free, None)

    # Another process holds it.
    taken = await job_at(store, 2, step)
    other = await lease_to_another(store, taken, NOW)
    lost = await refused(store, write, taken, LATER, LeaseLost)
    assert isinstance(lost, LeaseLost) and lost.holder == other

    # This process held it, but its lease ran out: refused from the moment it ends.
    ran_out = await job_at(store, 3, step)
    async with leased(store, ran_out, NOW):
        lost = await refused(store, write, ran_out, NOW + LEASE, LeaseLost)
        assert isinstance(lost, LeaseLost) and lost.holder == store.owner
        # ... and another process took the job over meanwhile.
        other = await lease_to_another(store, ran_out, NOW + LEASE, host="successor")
        lost = await refused(store, write, ran_out, NOW + LEASE, LeaseLost)
        assert isinstance(lost, LeaseLost) and lost.holder == other
        assert other != store.owner

    # Another process on the same machine and database (another JobStore) is another owner.
    mine = await job_at(store, 4, step)
    twin = JobStore(store.engine)
    assert twin.owner != store.owner
    async with leased(store, mine, NOW):
        await refused(twin, write, mine, LATER, LeaseLost)


@pytest.mark.parametrize("name", list(WRITES))
async def test_a_write_for_another_step_is_refused(store: JobStore, name: str) -> None:
    step, write = WRITES[name]
    for n, other_step in enumerate([s for s in Step if s is not step]):
        job = await job_at(store, n, other_step)
        async with leased(store, job, NOW):
            error = await refused(store, write, job, LATER, StaleTransition)
        assert f"needs {other_step.value}" in str(error)

    # A job that needs nothing: cleaned up, still leased by this process.
    done = await job_at(store, 9, Step.CLEAN)
    async with leased(store, done, NOW):
        await store.mark_cleanup_completed(done, NOW)
        error = await refused(store, write, done, LATER, StaleTransition)
    assert "needs nothing" in str(error)


@pytest.mark.parametrize("name", list(WRITES))
async def test_a_write_for_an_unknown_job_is_refused(store: JobStore, name: str) -> None:
    _, write = WRITES[name]
    await job_at(store, 1, Step.FETCH)
    with pytest.raises(UnknownJobError):
        await write(store, arn(404), NOW)
    assert [j.batch_job_arn for j in await store.list_jobs()] == [arn(1)]
    async with store.engine.connect() as conn:
        owners = (await conn.execute(select(batch_records.c.batch_job_arn))).scalars().all()
    assert owners == [arn(1)]


async def test_record_check_of_a_job_whose_results_are_stored_is_refused(
    store: JobStore,
) -> None:
    job = await job_at(store, 1, Step.CLEAN)
    async with leased(store, job, NOW):
        error = await refused(store, _record_check, job, LATER, StaleTransition)
    assert str(error) == (
        f"{job}: a check step's write refused: the job is COMPLETED and needs clean"
    )


async def test_cleanup_completed_twice_is_refused_the_second_time(store: JobStore) -> None:
    job = await job_at(store, 1, Step.CLEAN)
    async with leased(store, job, NOW):
        await store.mark_cleanup_completed(job, NOW)
        await refused(
            store, lambda s, j, now: s.mark_cleanup_completed(j, now), job, LATER, StaleTransition
        )
    done = await store.get_job(job)
    assert done is not None and done.cleanup_completed_at == NOW


async def test_records_written_after_the_lease_was_lost_are_not_stored(store: JobStore) -> None:
    job = await job_at(store, 1, Step.FETCH)
    async with leased(store, job, NOW):
        await store.write_records(job, [RecordRow("r2", "ok")], NOW + MINUTE)
        # The lease ran out (the write extended it to NOW + 6 min) and another took the job.
        other = JobStore(store.engine, another_process("successor"))
        lost_at = NOW + MINUTE + LEASE
        claimed = await other.leases.claim(1, lost_at, check_interval_seconds=0, only=job)
        assert [j.batch_job_arn for j in claimed] == [job]
        rows = [RecordRow("r3", "ok"), RecordRow("r4", "error", error_code="X")]
        with pytest.raises(LeaseLost) as lost:
            await store.write_records(job, rows, lost_at)
    assert lost.value.holder == other.owner
    assert await store.record_ids(job) == {"r1", "r2"}
    # The new holder writes them.
    assert (await other.write_records(job, rows, lost_at)).written == 2
    assert await store.record_ids(job) == {"r1", "r2", "r3", "r4"}


async def test_requeue_failed_needs_a_failed_job_nobody_else_holds(store: JobStore) -> None:
    async def requeue(who: JobStore, job: str) -> bool:
        return await who.requeue_failed(
            job,
            bedrock_status=BedrockStatus.IN_PROGRESS,
            status=JobStatus.IN_PROGRESS,
            message="back",
            now=LATER,
        )

    failed = await job_at(store, 1, Step.CHECK)
    async with leased(store, failed, NOW):
        await store.mark_check_failed(failed, "AccessDenied", NOW)
    checking = await job_at(store, 2, Step.CHECK)

    assert await requeue(store, checking) is False  # not FAILED
    assert await requeue(store, arn(404)) is False
    assert await requeue(store, failed) is True
    back = await store.get_job(failed)
    assert back is not None
    assert (back.status, back.bedrock_status, back.message, back.last_checked_at) == (
        JobStatus.IN_PROGRESS,
        BedrockStatus.IN_PROGRESS,
        "back",
        LATER,
    )
    assert back.claimed_by is None  # no lease is taken

    # A FAILED job another process holds a live lease on is left alone.
    held = await job_at(store, 3, Step.CHECK)
    async with leased(store, held, NOW):
        await store.mark_check_failed(held, "AccessDenied", NOW)
        other = JobStore(store.engine, another_process())
        before = await snapshot(store, held)
        assert await requeue(other, held) is False
        assert await snapshot(store, held) == before


async def test_record_unchanged_writes_only_free_jobs_still_at_that_status(
    store: JobStore,
) -> None:
    for n in (1, 2, 3):
        await job_at(store, n, Step.CHECK)  # Bedrock said IN_PROGRESS
    stopping = await job_at(store, 4, Step.CHECK)
    async with leased(store, stopping, NOW):
        await _record_check(store, stopping, NOW)
    fetching = await job_at(store, 5, Step.FETCH)
    other = await lease_to_another(store, arn(2), NOW)
    async with leased(store, arn(3), NOW):  # this process's own lease does not stop it
        written = await store.record_unchanged(
            {
                BedrockStatus.IN_PROGRESS: {
                    job: Progress(processed=n, total=10)
                    for n, job in enumerate((arn(1), arn(2), arn(3), stopping))
                },
                # Bedrock's status is unchanged, but the job needs its fetch, not a check.
                BedrockStatus.COMPLETED: {fetching: Progress(processed=10, total=10)},
            },
            LATER,
        )
    assert written == {arn(1), arn(3)}
    checked = {j.batch_job_arn: j.last_checked_at for j in await store.list_jobs()}
    assert checked == {arn(1): LATER, arn(2): None, arn(3): LATER, stopping: NOW, fetching: None}
    progress = {j.batch_job_arn: j.progress_processed for j in await store.list_jobs()}
    # Only the jobs whose check was written have their progress written with it.
    assert progress == {arn(1): 0, arn(2): None, arn(3): 2, stopping: None, fetching: None}
    held = await store.get_job(arn(2))
    assert held is not None and held.claimed_by == other

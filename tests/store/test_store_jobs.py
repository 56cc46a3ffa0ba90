"""Tracking jobs, looking them up, and moving them through their states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update
from store_testlib import NOW, arn

from batch_poller.domain import BedrockStatus, JobStatus, Step
from batch_poller.store import (
    JobStore,
    NewJob,
    RecordTotals,
    StaleTransition,
    StoreError,
    UnknownJobError,
)
from batch_poller.store.tables import bedrock_batch_jobs
from tests.helpers import another_process, leased

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


def new_job(n: int, **kw: Any) -> NewJob:
    return NewJob(arn=arn(n), **kw)


def finished(n: int, **kw: Any) -> NewJob:
    """A job Bedrock finished with output that is not stored yet: it needs its fetch."""
    kw.setdefault("bedrock_status", BedrockStatus.COMPLETED)
    return new_job(n, status=JobStatus.IN_PROGRESS, **kw)


async def store_results(store: JobStore, n: int, status: JobStatus, now: datetime) -> None:
    async with leased(store, arn(n), now):
        await store.mark_results_fetched(arn(n), RecordTotals(), status, now)


async def test_track_inserts_then_leaves_progress_alone(store: JobStore) -> None:
    first = new_job(
        1,
        job_name="nightly",
        model_id="anthropic.claude-3-haiku",
        bedrock_status=BedrockStatus.SUBMITTED,
        input_s3_uri="s3://in/batch.jsonl",
        output_s3_prefix="s3://out/job000000001/",
        submitted_at=NOW - MINUTE,
    )
    assert await store.track_job(first, NOW) is True
    async with leased(store, arn(1), NOW + MINUTE):
        await store.record_check(
            arn(1),
            bedrock_status=BedrockStatus.IN_PROGRESS,
            status=JobStatus.IN_PROGRESS,
            message="running",
            completed_at=None,
            now=NOW + MINUTE,
        )

    # Tracking again (say, after a restart) must not rewind the job.
    assert await store.track_job(first, NOW + 2 * MINUTE) is False
    job = await store.get_job(arn(1))
    assert job is not None
    assert job.status is JobStatus.IN_PROGRESS
    assert job.bedrock_status is BedrockStatus.IN_PROGRESS
    assert job.message == "running"
    assert job.last_checked_at == NOW + MINUTE
    assert job.created_at == NOW
    assert job.job_id == "job000000001"
    assert job.job_name == "nightly"
    assert job.results_fetch_attempts == 0
    assert job.cleanup_attempts == 0
    assert job.s3_folder is None
    assert len(await store.list_jobs()) == 1


async def test_track_again_only_fills_an_empty_s3_folder(store: JobStore) -> None:
    await store.track_job(new_job(1), NOW)
    await store.track_job(new_job(1, s3_folder="s3://in/mine/"), NOW)
    await store.track_job(new_job(1, s3_folder="s3://in/someone-else/"), NOW)
    job = await store.get_job(arn(1))
    assert job is not None
    assert job.s3_folder == "s3://in/mine/"


async def test_get_job_by_arn_or_id(store: JobStore) -> None:
    await store.track_job(new_job(7, job_id="job000000007"), NOW)
    by_arn = await store.get_job(arn(7))
    by_id = await store.get_job("job000000007")
    assert by_arn is not None
    assert by_arn == by_id
    assert by_arn.batch_job_arn == arn(7)
    assert await store.get_job("job000000008") is None
    assert await store.get_job(arn(8)) is None


async def test_list_jobs_newest_first_with_filter_and_paging(store: JobStore) -> None:
    for n in range(1, 5):
        await store.track_job(new_job(n, submitted_at=NOW + n * MINUTE), NOW)
    await store.track_job(new_job(9), NOW + 10 * MINUTE)  # no submitted_at: uses created_at
    async with leased(store, arn(2), NOW):
        await store.record_check(
            arn(2),
            bedrock_status=BedrockStatus.FAILED,
            status=JobStatus.FAILED,
            message="bad input",
            completed_at=NOW,
            now=NOW,
        )

    assert [j.batch_job_arn for j in await store.list_jobs()] == [
        arn(9),
        arn(4),
        arn(3),
        arn(2),
        arn(1),
    ]
    assert [j.batch_job_arn for j in await store.list_jobs(limit=2, offset=1)] == [arn(4), arn(3)]
    failed = await store.list_jobs(JobStatus.FAILED)
    assert [(j.batch_job_arn, j.message) for j in failed] == [(arn(2), "bad input")]


async def test_polling_query_due_order_and_exclusions(store: JobStore) -> None:
    # due: never checked
    await store.track_job(new_job(1, submitted_at=NOW - 10 * MINUTE), NOW)
    # not due: checked 30 s ago
    await store.track_job(new_job(2, submitted_at=NOW - 60 * MINUTE), NOW)
    # due: checked exactly one interval ago
    await store.track_job(new_job(3, submitted_at=NOW - 20 * MINUTE), NOW)
    # due, but no submitted_at: sorts last
    await store.track_job(new_job(4, status=JobStatus.IN_PROGRESS), NOW)
    # terminal: never polled however stale
    await store.track_job(
        new_job(5, status=JobStatus.COMPLETED, submitted_at=NOW - 99 * MINUTE), NOW
    )
    await store.track_job(new_job(6, status=JobStatus.FAILED, submitted_at=NOW - 99 * MINUTE), NOW)
    await store.track_job(
        new_job(7, status=JobStatus.RESULT_FETCH_FAILED, submitted_at=NOW - 99 * MINUTE), NOW
    )

    async def check(n: int, at: datetime) -> None:
        async with leased(store, arn(n), at):
            await store.record_check(
                arn(n),
                bedrock_status=BedrockStatus.IN_PROGRESS,
                status=JobStatus.IN_PROGRESS,
                message=None,
                completed_at=None,
                now=at,
            )

    async def due_checks(interval: float, now: datetime, limit: int | None = None) -> list[str]:
        due = await store.due_jobs([Step.CHECK], now, interval, limit=limit)
        return [j.batch_job_arn for j in due]

    await check(2, NOW - timedelta(seconds=30))
    await check(3, NOW - MINUTE)

    assert await due_checks(60, NOW) == [arn(3), arn(1), arn(4)]
    assert await due_checks(60, NOW, limit=2) == [arn(3), arn(1)]
    # Thirty seconds later job 2 is due as well.
    assert await due_checks(60, NOW + timedelta(seconds=30)) == [arn(2), arn(3), arn(1), arn(4)]
    # Interval 0: always due, even one checked "after" now.
    await check(1, NOW + MINUTE)
    assert await due_checks(0, NOW) == [arn(2), arn(3), arn(1), arn(4)]
    # Whoever holds a job, it is due: due_jobs reads, it does not claim.
    async with leased(store, arn(3), NOW):
        assert await due_checks(60, NOW) == [arn(3), arn(4)]


async def test_record_check_keeps_completed_at_unless_given(store: JobStore) -> None:
    # A job that is stopping keeps needing checks; a check that reports no end time keeps the
    # one an earlier check stored. (A job Bedrock COMPLETED needs its fetch, not another check.)
    await store.track_job(new_job(1), NOW)
    ended = NOW - MINUTE
    async with leased(store, arn(1), NOW):
        await store.record_check(
            arn(1),
            bedrock_status=BedrockStatus.STOPPING,
            status=JobStatus.IN_PROGRESS,
            message="done",
            completed_at=ended,
            now=NOW,
        )
        await store.record_check(
            arn(1),
            bedrock_status=BedrockStatus.STOPPING,
            status=JobStatus.IN_PROGRESS,
            message=None,
            completed_at=None,
            now=NOW + MINUTE,
        )
    job = await store.get_job(arn(1))
    assert job is not None
    assert job.completed_at == ended
    assert job.message is None
    assert job.last_checked_at == NOW + MINUTE
    assert job.updated_at == NOW + MINUTE


async def test_updates_to_unknown_jobs_raise(store: JobStore) -> None:
    with pytest.raises(UnknownJobError):
        await store.mark_check_failed(arn(404), "nope", NOW)
    with pytest.raises(UnknownJobError):
        await store.increment_fetch_attempts(arn(404), "nope", NOW)
    with pytest.raises(UnknownJobError):
        await store.record_cleanup_error(arn(404), "nope", NOW)
    assert await store.list_jobs() == []


async def test_fetch_attempts_count_up_and_keep_the_error(store: JobStore) -> None:
    await store.track_job(finished(1), NOW)
    async with leased(store, arn(1), NOW):
        assert await store.increment_fetch_attempts(arn(1), "throttled", NOW) == 1
        assert await store.increment_fetch_attempts(arn(1), None, NOW + MINUTE) == 2
        assert await store.increment_fetch_attempts(arn(1), "timeout", NOW + 2 * MINUTE) == 3
    job = await store.get_job(arn(1))
    assert job is not None
    assert job.results_fetch_attempts == 3
    assert job.last_error == "timeout"
    assert job.updated_at == NOW + 2 * MINUTE


async def test_needing_fetch_and_fetch_failed(store: JobStore) -> None:
    def ended(n: int, bedrock: BedrockStatus, status: JobStatus) -> NewJob:
        return new_job(
            n,
            bedrock_status=bedrock,
            status=status,
            submitted_at=NOW - n * MINUTE,
            completed_at=NOW - n * MINUTE,
        )

    await store.track_job(ended(1, BedrockStatus.COMPLETED, JobStatus.IN_PROGRESS), NOW)
    await store.track_job(ended(2, BedrockStatus.PARTIALLY_COMPLETED, JobStatus.IN_PROGRESS), NOW)
    await store.track_job(ended(3, BedrockStatus.COMPLETED, JobStatus.IN_PROGRESS), NOW)
    await store.track_job(ended(4, BedrockStatus.IN_PROGRESS, JobStatus.IN_PROGRESS), NOW)
    await store.track_job(ended(5, BedrockStatus.FAILED, JobStatus.FAILED), NOW)
    await store.track_job(ended(6, BedrockStatus.COMPLETED, JobStatus.IN_PROGRESS), NOW)

    await store_results(store, 3, JobStatus.COMPLETED, NOW)
    async with leased(store, arn(6), NOW):
        await store.mark_fetch_failed(arn(6), "bad manifest", NOW)

    def arns(jobs: list[Any]) -> list[str]:
        return [j.batch_job_arn for j in jobs]

    # A failed fetch still needs its fetch; it is due only when asked for (no retry time).
    assert arns(await store.jobs_needing(Step.FETCH)) == [arn(6), arn(2), arn(1)]
    assert arns(await store.due_jobs([Step.FETCH], NOW, 60)) == [arn(2), arn(1)]
    retried = await store.due_jobs([Step.FETCH], NOW, 60, retry_failed_fetch=True)
    assert arns(retried) == [arn(6), arn(2), arn(1)]
    failed = await store.list_jobs(JobStatus.RESULT_FETCH_FAILED)
    assert [(j.batch_job_arn, j.status, j.last_error) for j in failed] == [
        (arn(6), JobStatus.RESULT_FETCH_FAILED, "bad manifest")
    ]
    # The others: 3 needs its cleanup, 4 its check, 5 nothing.
    assert arns(await store.jobs_needing(Step.CLEAN)) == [arn(3)]
    assert arns(await store.jobs_needing(Step.CHECK)) == [arn(4)]


async def test_a_failed_fetch_is_due_again_at_its_retry_time(store: JobStore) -> None:
    await store.track_job(finished(1), NOW)
    async with leased(store, arn(1), NOW):
        await store.mark_fetch_failed(arn(1), "throttled", NOW, retry_at=NOW + MINUTE)
    before = await store.due_jobs([Step.FETCH], NOW + MINUTE - timedelta(seconds=1), 60)
    at = await store.due_jobs([Step.FETCH], NOW + MINUTE, 60)
    assert before == []
    assert [(j.batch_job_arn, j.fetch_failures, j.fetch_retry_at) for j in at] == [
        (arn(1), 1, NOW + MINUTE)
    ]


async def test_mark_results_fetched_stores_totals(store: JobStore) -> None:
    await store.track_job(finished(1, bedrock_status=BedrockStatus.PARTIALLY_COMPLETED), NOW)
    totals = RecordTotals(
        total=10, ok=8, error=2, input_tokens=1000, output_tokens=500, cost=Decimal("0.01234567")
    )
    async with leased(store, arn(1), NOW):
        await store.increment_fetch_attempts(arn(1), "transient", NOW)
        await store.mark_results_fetched(
            arn(1), totals, JobStatus.PARTIALLY_COMPLETED, NOW + MINUTE
        )
    job = await store.get_job(arn(1))
    assert job is not None
    assert job.status is JobStatus.PARTIALLY_COMPLETED
    assert job.results_fetched_at == NOW + MINUTE
    assert (job.total_records, job.success_records, job.error_records) == (10, 8, 2)
    assert (job.input_tokens, job.output_tokens) == (1000, 500)
    assert job.cost == Decimal("0.01234567")
    assert job.last_error is None
    with pytest.raises(ValueError):
        await store.mark_results_fetched(arn(1), totals, JobStatus.FAILED, NOW)


async def test_cleanup_pending_until_completed(store: JobStore) -> None:
    for n in (1, 2, 3, 4):
        await store.track_job(finished(n), NOW)
    await store_results(store, 1, JobStatus.COMPLETED, NOW)
    await store_results(store, 2, JobStatus.PARTIALLY_COMPLETED, NOW)
    # 3 never fetched; 4 fetched but then failed by the daemon. No step takes a job from
    # COMPLETED to FAILED any more, so that state is written by hand.
    await store_results(store, 4, JobStatus.COMPLETED, NOW)
    async with store.engine.begin() as conn:
        await conn.execute(
            update(bedrock_batch_jobs)
            .where(bedrock_batch_jobs.c.batch_job_arn == arn(4))
            .values(status=JobStatus.FAILED.value, message="given up")
        )

    async def pending() -> list[Any]:
        return await store.jobs_needing(Step.CLEAN)

    assert {j.batch_job_arn for j in await pending()} == {arn(1), arn(2)}

    async with leased(store, arn(1), NOW):
        assert await store.record_cleanup_error(arn(1), "AccessDenied", NOW) == 1
        assert await store.record_cleanup_error(arn(1), "AccessDenied again", NOW) == 2
        still = await pending()
        assert {j.batch_job_arn for j in still} == {arn(1), arn(2)}
        one = next(j for j in still if j.batch_job_arn == arn(1))
        assert (one.cleanup_attempts, one.last_error) == (2, "AccessDenied again")

        await store.add_bytes_freed(arn(1), 123_456_789_000, NOW)
        await store.add_bytes_freed(arn(1), 12, NOW)
        await store.mark_cleanup_completed(arn(1), NOW + MINUTE)
        done = await store.get_job(arn(1))
        # A late second run is refused, not made: the job needs nothing any more.
        with pytest.raises(StaleTransition):
            await store.mark_cleanup_completed(arn(1), NOW + 2 * MINUTE)
        assert await store.get_job(arn(1)) == done
    assert [j.batch_job_arn for j in await pending()] == [arn(2)]
    assert done is not None
    assert done.cleanup_completed_at == NOW + MINUTE
    assert done.updated_at == NOW + MINUTE
    assert done.bytes_freed == 123_456_789_012  # counted as deleted; needs the BIGINT
    assert done.last_error is None


async def test_a_late_fetch_failure_does_not_touch_stored_results(store: JobStore) -> None:
    await store.track_job(finished(1), NOW)
    async with leased(store, arn(1), NOW):
        await store.mark_results_fetched(arn(1), RecordTotals(total=3), JobStatus.COMPLETED, NOW)
        stored = await store.get_job(arn(1))

        # Still holding the lease, a fetch step's write is refused: the job needs its cleanup.
        with pytest.raises(StaleTransition, match="needs clean"):
            await store.increment_fetch_attempts(arn(1), "NoSuchKey", NOW + MINUTE)
        with pytest.raises(StaleTransition, match="needs clean"):
            await store.mark_fetch_failed(arn(1), "NoSuchKey", NOW + MINUTE)

        job = await store.get_job(arn(1))
    assert stored is not None and job == stored
    assert job.status is JobStatus.COMPLETED and job.last_error is None
    assert (job.results_fetch_attempts, job.fetch_failures, job.total_records) == (0, 0, 3)
    with pytest.raises(UnknownJobError):
        await store.mark_fetch_failed(arn(9), "no such job", NOW)


async def test_leases_give_each_job_to_one_owner_until_they_run_out(store: JobStore) -> None:
    for n in (1, 2, 3):
        await store.track_job(new_job(n), NOW)
    a, b, c = (JobStore(store.engine, another_process(host)) for host in ("a", "b", "c"))
    for each in (a, b, c):
        each.set_lease(MINUTE)

    async def claim(who: JobStore, limit: int, now: datetime) -> set[str]:
        jobs = await who.leases.claim(limit, now, check_interval_seconds=0)
        assert all((j.claimed_by, j.claimed_until) == (who.owner, now + MINUTE) for j in jobs)
        return {j.batch_job_arn for j in jobs}

    first = await claim(a, 2, NOW)
    second = await claim(b, 3, NOW)
    extended = await a.leases.extend({arn(1), arn(3)}, NOW + 30 * SECOND)
    late_extend = await a.leases.extend({arn(2)}, NOW + MINUTE)  # its lease ran out just now
    taken_over = await claim(b, 3, NOW + 75 * SECOND)
    await b.leases.release({arn(1), arn(2), arn(3)})
    after_release = await claim(c, 3, NOW + 75 * SECOND)

    assert first == {arn(1), arn(2)}
    assert second == {arn(3)}
    assert extended == {arn(1)}
    assert late_extend == set()
    assert taken_over == {arn(2), arn(3)}  # a's lease on 2 ran out; 1 was extended
    assert after_release == {arn(2), arn(3)}
    job = await store.get_job(arn(1))
    assert job is not None and (job.claimed_by, job.claimed_until) == (a.owner, NOW + 90 * SECOND)
    # release() without jobs gives up every lease of its process, and only those.
    await c.leases.release()
    held = {j.batch_job_arn: j.claimed_by for j in await store.list_jobs()}
    assert held == {arn(1): a.owner, arn(2): None, arn(3): None}


async def test_status_counts_include_zeros(store: JobStore) -> None:
    for n in (1, 2, 3):
        await store.track_job(new_job(n), NOW)
    async with leased(store, arn(3), NOW):
        await store.mark_check_failed(arn(3), "x", NOW)
    counts = await store.status_counts()
    assert counts == {
        JobStatus.SUBMITTED: 2,
        JobStatus.IN_PROGRESS: 0,
        JobStatus.COMPLETED: 0,
        JobStatus.PARTIALLY_COMPLETED: 0,
        JobStatus.FAILED: 1,
        JobStatus.RESULT_FETCH_FAILED: 0,
    }


async def test_datetimes_round_trip_as_aware_utc(store: JobStore) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    submitted = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=india)
    await store.track_job(new_job(1, submitted_at=submitted), NOW)
    job = await store.get_job(arn(1))
    assert job is not None
    assert job.submitted_at == submitted
    assert job.submitted_at is not None
    assert job.submitted_at.tzinfo is UTC
    assert job.submitted_at.hour == 18  # 23:59 in +05:30 is 18:29 UTC
    assert job.submitted_at.microsecond == 123456
    assert job.created_at.tzinfo is UTC


async def test_non_utc_now_compares_correctly(store: JobStore) -> None:
    # A check stored from a +02:00 clock must compare by instant, not by wall time.
    plus_two = timezone(timedelta(hours=2))
    await store.track_job(new_job(1), NOW)
    async with leased(store, arn(1), NOW.astimezone(plus_two)):
        await store.record_check(
            arn(1),
            bedrock_status=BedrockStatus.IN_PROGRESS,
            status=JobStatus.IN_PROGRESS,
            message=None,
            completed_at=None,
            now=NOW.astimezone(plus_two),
        )
    assert await store.due_jobs([Step.CHECK], NOW + timedelta(seconds=59), 60) == []
    due = await store.due_jobs([Step.CHECK], NOW + MINUTE, 60)
    assert [j.batch_job_arn for j in due] == [arn(1)]


async def test_naive_datetimes_are_refused(store: JobStore) -> None:
    with pytest.raises(StoreError, match=r"^track a job: ValueError: naive datetime"):
        await store.track_job(new_job(1), datetime(2024, 1, 1))
    assert await store.get_job(arn(1)) is None

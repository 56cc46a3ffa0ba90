"""Tracking jobs, looking them up, and moving them through their states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from store_testlib import NOW, arn

from batch_poller.domain import BedrockStatus, JobStatus
from batch_poller.store import JobStore, NewJob, RecordTotals, StoreError, UnknownJobError

MINUTE = timedelta(minutes=1)


def new_job(n: int, **kw: Any) -> NewJob:
    return NewJob(arn=arn(n), **kw)


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
    await store.mark_failed(arn(2), "bad input", NOW)

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
        await store.record_check(
            arn(n),
            bedrock_status=BedrockStatus.IN_PROGRESS,
            status=JobStatus.IN_PROGRESS,
            message=None,
            completed_at=None,
            now=at,
        )

    await check(2, NOW - timedelta(seconds=30))
    await check(3, NOW - MINUTE)

    due = await store.get_pending_batch_jobs_for_polling(60, NOW)
    assert [j.batch_job_arn for j in due] == [arn(3), arn(1), arn(4)]

    limited = await store.get_pending_batch_jobs_for_polling(60, NOW, limit=2)
    assert [j.batch_job_arn for j in limited] == [arn(3), arn(1)]

    # Thirty seconds later job 2 is due as well.
    later = await store.get_pending_batch_jobs_for_polling(60, NOW + timedelta(seconds=30))
    assert [j.batch_job_arn for j in later] == [arn(2), arn(3), arn(1), arn(4)]

    # Interval 0: always due, even one checked "after" now.
    await check(1, NOW + MINUTE)
    always = await store.get_pending_batch_jobs_for_polling(0, NOW)
    assert [j.batch_job_arn for j in always] == [arn(2), arn(3), arn(1), arn(4)]


async def test_record_check_keeps_completed_at_unless_given(store: JobStore) -> None:
    await store.track_job(new_job(1), NOW)
    ended = NOW - MINUTE
    await store.record_check(
        arn(1),
        bedrock_status=BedrockStatus.COMPLETED,
        status=JobStatus.IN_PROGRESS,
        message="done",
        completed_at=ended,
        now=NOW,
    )
    await store.record_check(
        arn(1),
        bedrock_status=BedrockStatus.COMPLETED,
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
        await store.mark_failed(arn(404), "nope", NOW)
    with pytest.raises(UnknownJobError):
        await store.increment_fetch_attempts(arn(404), "nope", NOW)
    with pytest.raises(UnknownJobError):
        await store.record_cleanup_error(arn(404), "nope", NOW)


async def test_fetch_attempts_count_up_and_keep_the_error(store: JobStore) -> None:
    await store.track_job(new_job(1), NOW)
    assert await store.increment_fetch_attempts(arn(1), "throttled", NOW) == 1
    assert await store.increment_fetch_attempts(arn(1), None, NOW + MINUTE) == 2
    assert await store.increment_fetch_attempts(arn(1), "timeout", NOW + 2 * MINUTE) == 3
    job = await store.get_job(arn(1))
    assert job is not None
    assert job.results_fetch_attempts == 3
    assert job.last_error == "timeout"
    assert job.updated_at == NOW + 2 * MINUTE


async def test_needing_fetch_and_fetch_failed(store: JobStore) -> None:
    def finished(n: int, bedrock: BedrockStatus, status: JobStatus) -> NewJob:
        return new_job(n, bedrock_status=bedrock, status=status, completed_at=NOW - n * MINUTE)

    await store.track_job(finished(1, BedrockStatus.COMPLETED, JobStatus.IN_PROGRESS), NOW)
    await store.track_job(
        finished(2, BedrockStatus.PARTIALLY_COMPLETED, JobStatus.IN_PROGRESS), NOW
    )
    await store.track_job(finished(3, BedrockStatus.COMPLETED, JobStatus.IN_PROGRESS), NOW)
    await store.track_job(finished(4, BedrockStatus.IN_PROGRESS, JobStatus.IN_PROGRESS), NOW)
    await store.track_job(finished(5, BedrockStatus.FAILED, JobStatus.FAILED), NOW)
    await store.track_job(finished(6, BedrockStatus.COMPLETED, JobStatus.IN_PROGRESS), NOW)

    await store.mark_results_fetched(arn(3), RecordTotals(total=1, ok=1), JobStatus.COMPLETED, NOW)
    await store.mark_fetch_failed(arn(6), "bad manifest", NOW)

    needing = await store.get_jobs_needing_fetch()
    assert [j.batch_job_arn for j in needing] == [arn(2), arn(1)]  # ended earliest first
    failed = await store.get_fetch_failed_jobs()
    assert [(j.batch_job_arn, j.status, j.last_error) for j in failed] == [
        (arn(6), JobStatus.RESULT_FETCH_FAILED, "bad manifest")
    ]


async def test_mark_results_fetched_stores_totals(store: JobStore) -> None:
    await store.track_job(new_job(1), NOW)
    await store.increment_fetch_attempts(arn(1), "transient", NOW)
    totals = RecordTotals(
        total=10, ok=8, error=2, input_tokens=1000, output_tokens=500, cost=Decimal("0.01234567")
    )
    await store.mark_results_fetched(arn(1), totals, JobStatus.PARTIALLY_COMPLETED, NOW + MINUTE)
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
        await store.track_job(new_job(n), NOW)
    await store.mark_results_fetched(arn(1), RecordTotals(), JobStatus.COMPLETED, NOW)
    await store.mark_results_fetched(arn(2), RecordTotals(), JobStatus.PARTIALLY_COMPLETED, NOW)
    # 3 never fetched; 4 fetched but then failed by the daemon.
    await store.mark_results_fetched(arn(4), RecordTotals(), JobStatus.COMPLETED, NOW)
    await store.mark_failed(arn(4), "given up", NOW)

    pending = await store.get_batch_jobs_pending_cleanup()
    assert {j.batch_job_arn for j in pending} == {arn(1), arn(2)}

    assert await store.record_cleanup_error(arn(1), "AccessDenied", NOW) == 1
    assert await store.record_cleanup_error(arn(1), "AccessDenied again", NOW) == 2
    pending = await store.get_batch_jobs_pending_cleanup()
    assert {j.batch_job_arn for j in pending} == {arn(1), arn(2)}
    one = next(j for j in pending if j.batch_job_arn == arn(1))
    assert (one.cleanup_attempts, one.last_error) == (2, "AccessDenied again")

    await store.add_bytes_freed(arn(1), 123_456_789_000, NOW)
    await store.add_bytes_freed(arn(1), 12, NOW)
    await store.mark_cleanup_completed(arn(1), NOW + MINUTE)
    await store.mark_cleanup_completed(
        arn(1), NOW + 2 * MINUTE
    )  # a late second run changes nothing
    assert [j.batch_job_arn for j in await store.get_batch_jobs_pending_cleanup()] == [arn(2)]
    done = await store.get_job(arn(1))
    assert done is not None
    assert done.cleanup_completed_at == NOW + MINUTE
    assert done.bytes_freed == 123_456_789_012  # counted as deleted; needs the BIGINT
    assert done.last_error is None


async def test_a_late_fetch_failure_does_not_touch_stored_results(store: JobStore) -> None:
    await store.track_job(new_job(1), NOW)
    await store.mark_results_fetched(arn(1), RecordTotals(total=3), JobStatus.COMPLETED, NOW)

    attempts = await store.increment_fetch_attempts(arn(1), "NoSuchKey", NOW)
    await store.mark_fetch_failed(arn(1), "NoSuchKey", NOW)

    job = await store.get_job(arn(1))
    assert attempts == 0
    assert job is not None and job.status is JobStatus.COMPLETED and job.last_error is None
    with pytest.raises(UnknownJobError):
        await store.mark_fetch_failed(arn(9), "no such job", NOW)


async def test_leases_give_each_job_to_one_owner_until_they_run_out(store: JobStore) -> None:
    for n in (1, 2, 3):
        await store.track_job(new_job(n), NOW)
    all_three = {arn(1), arn(2), arn(3)}

    first = await store.leases.claim({arn(1), arn(2)}, "a", NOW + MINUTE, NOW)
    second = await store.leases.claim(all_three, "b", NOW + MINUTE, NOW)
    extended = await store.leases.extend({arn(1), arn(3)}, "a", NOW + 3 * MINUTE)
    taken_over = await store.leases.claim(all_three, "b", NOW + 4 * MINUTE, NOW + 2 * MINUTE)
    await store.leases.release(all_three, "b")
    after_release = await store.leases.claim(all_three, "c", NOW + 5 * MINUTE, NOW + 2 * MINUTE)

    assert first == {arn(1), arn(2)}
    assert second == {arn(3)}
    assert extended == {arn(1)}
    assert taken_over == {arn(2), arn(3)}  # a's lease on 2 ran out; 1 was extended
    assert after_release == {arn(2), arn(3)}
    job = await store.get_job(arn(1))
    assert job is not None and (job.claimed_by, job.claimed_until) == ("a", NOW + 3 * MINUTE)


async def test_status_counts_include_zeros(store: JobStore) -> None:
    for n in (1, 2, 3):
        await store.track_job(new_job(n), NOW)
    await store.mark_failed(arn(3), "x", NOW)
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
    await store.record_check(
        arn(1),
        bedrock_status=BedrockStatus.IN_PROGRESS,
        status=JobStatus.IN_PROGRESS,
        message=None,
        completed_at=None,
        now=NOW.astimezone(plus_two),
    )
    assert await store.get_pending_batch_jobs_for_polling(60, NOW + timedelta(seconds=59)) == []
    due = await store.get_pending_batch_jobs_for_polling(60, NOW + MINUTE)
    assert [j.batch_job_arn for j in due] == [arn(1)]


async def test_naive_datetimes_are_refused(store: JobStore) -> None:
    with pytest.raises(StoreError, match=r"^track a job: ValueError: naive datetime"):
        await store.track_job(new_job(1), datetime(2024, 1, 1))
    assert await store.get_job(arn(1)) is None

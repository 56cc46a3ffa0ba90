"""The store selects exactly the jobs that domain.next_step / domain.is_due name, for every
combination of the fields that decide them, including ones no transition produces."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import insert
from store_testlib import NOW, arn

from batch_poller import domain
from batch_poller.domain import BedrockStatus, JobStatus, Step
from batch_poller.rows import JobRow
from batch_poller.store import JobStore
from batch_poller.store.tables import bedrock_batch_jobs

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
INTERVAL = 60  # seconds; a job checked at CHECKED is due for its check from NOW on
CHECKED = NOW - INTERVAL * SECOND
RETRY_AT = NOW  # a failed fetch's retry falls due at NOW

# (last_checked_at, fetch_retry_at): every job comes in these four variants.
TIMINGS: tuple[tuple[datetime | None, datetime | None], ...] = tuple(
    itertools.product((None, CHECKED), (None, RETRY_AT))
)
STAMPS = (None, NOW - 60 * MINUTE)
# (group_name, group_compiled_at): no group, a group not compiled yet, a compiled group.
GROUPS = ((None, None), ("analysis-7", None), ("analysis-7", NOW - MINUTE))
COMBINATIONS = list(
    itertools.product(JobStatus, (None, *BedrockStatus), STAMPS, STAMPS, TIMINGS, GROUPS)
)


async def every_combination(store: JobStore) -> list[JobRow]:
    """One job per combination, written in one statement (the steps read only these columns,
    whatever path led to them); the jobs as read back through the store."""
    tracked_at = NOW - 2 * 60 * MINUTE
    rows = []
    for n, combination in enumerate(COMBINATIONS):
        status, bedrock, fetched, cleaned, (checked, retry_at), (group, compiled) = combination
        rows.append(
            {
                "batch_job_arn": arn(n),
                "job_id": f"{n:012d}",
                "status": status.value,
                "bedrock_status": None if bedrock is None else bedrock.value,
                # Oldest first in due_jobs: a submission order unlike the order of the arns.
                "submitted_at": NOW - (n * 7919 % len(COMBINATIONS)) * SECOND,
                "results_fetched_at": fetched,
                "cleanup_completed_at": cleaned,
                "last_checked_at": checked,
                "fetch_retry_at": retry_at,
                "group_name": group,
                "group_compiled_at": compiled,
                "created_at": tracked_at,
                "updated_at": tracked_at,
            }
        )
    async with store.engine.begin() as conn:
        await conn.execute(insert(bedrock_batch_jobs), rows)
    jobs = await store.list_jobs(limit=len(COMBINATIONS) + 1)
    assert len(jobs) == len(COMBINATIONS)
    return jobs


def arns(jobs: Iterable[JobRow]) -> list[str]:
    return sorted(j.batch_job_arn for j in jobs)


async def test_jobs_needing_each_step_are_those_next_step_names(store: JobStore) -> None:
    jobs = await every_combination(store)
    # The stamps were written as asked: the table holds every combination.
    seen = {
        (
            j.status,
            j.bedrock_status,
            j.results_fetched_at,
            j.cleanup_completed_at,
            (j.last_checked_at, j.fetch_retry_at),
            (j.group_name, j.group_compiled_at),
        )
        for j in jobs
    }
    assert seen == set(COMBINATIONS)

    for step in Step:
        expected = [j for j in jobs if domain.next_step(j) is step]
        assert expected, f"no combination needs {step}"
        needing = await store.jobs_needing(step)
        assert arns(needing) == arns(expected), step
        assert len(needing) == len({j.batch_job_arn for j in needing})
        # Oldest submission first.
        submitted = [j.submitted_at for j in needing]
        assert submitted == sorted(submitted)

    # Every job is in at most one of them; those in none need nothing.
    done = [j for j in jobs if domain.next_step(j) is None]
    needing_any = [j for step in Step for j in await store.jobs_needing(step)]
    assert len(needing_any) + len(done) == len(jobs)
    assert {j.status for j in done} >= {JobStatus.FAILED, JobStatus.COMPLETED}

    # The status page's counts follow the same rule.
    activity = await store.activity(NOW)
    pending = [j for j in jobs if domain.next_step(j) in (Step.CHECK, Step.FETCH)]
    cleanups = [j for j in jobs if domain.next_step(j) is Step.CLEAN]
    assert (activity.pending, activity.cleanups_pending) == (len(pending), len(cleanups))


async def test_due_jobs_are_those_is_due_names(store: JobStore) -> None:
    jobs = await every_combination(store)
    step_sets: list[tuple[Step, ...]] = [(step,) for step in Step] + [tuple(Step)]
    differs = 0
    for now, interval, retry, steps in itertools.product(
        (NOW - SECOND, NOW, NOW + SECOND),
        (0, INTERVAL / 2, INTERVAL, INTERVAL * 2),
        (False, True),
        step_sets,
    ):
        expected = [
            j
            for j in jobs
            if (step := domain.next_step(j)) in steps
            and domain.is_due(
                j, step, now, check_interval_seconds=interval, retry_failed_fetch=retry
            )
        ]
        due = await store.due_jobs(steps, now, interval, retry_failed_fetch=retry)
        case = (now, interval, retry, steps)
        assert arns(due) == arns(expected), case
        submitted = [j.submitted_at for j in due]
        assert submitted == sorted(submitted), case
        needing = [j for j in jobs if domain.next_step(j) in steps]
        differs += len(expected) != len(needing)
        limited = await store.due_jobs(steps, now, interval, retry_failed_fetch=retry, limit=3)
        assert limited == due[:3], case

    # Not vacuous: in most cases some jobs that need a step are not due for it.
    assert differs > 0


async def test_due_boundaries(store: JobStore) -> None:
    jobs = await every_combination(store)

    async def due(step: Step, now: datetime, interval: float, retry: bool = False) -> set[str]:
        found = await store.due_jobs([step], now, interval, retry_failed_fetch=retry)
        return {j.batch_job_arn for j in found}

    checked = {
        j.batch_job_arn
        for j in jobs
        if domain.next_step(j) is Step.CHECK and j.last_checked_at is not None
    }
    # A check falls due exactly one interval after the last; an interval of 0 is always due.
    assert checked
    assert checked.isdisjoint(await due(Step.CHECK, NOW - SECOND, INTERVAL))
    assert checked <= await due(Step.CHECK, NOW, INTERVAL)
    assert checked <= await due(Step.CHECK, NOW - 10 * MINUTE, 0)

    failed = {
        (j.batch_job_arn, j.fetch_retry_at)
        for j in jobs
        if domain.next_step(j) is Step.FETCH and j.status is JobStatus.RESULT_FETCH_FAILED
    }
    with_retry = {a for a, at in failed if at is not None}
    without = {a for a, at in failed if at is None}
    assert with_retry and without
    # A failed fetch waits for its retry time, or for someone to ask for it.
    before = await due(Step.FETCH, NOW - SECOND, INTERVAL)
    at = await due(Step.FETCH, NOW, INTERVAL)
    asked = await due(Step.FETCH, NOW - SECOND, INTERVAL, retry=True)
    assert (with_retry | without).isdisjoint(before)
    assert with_retry <= at and without.isdisjoint(at)
    assert (with_retry | without) <= asked


async def test_a_claim_of_everything_takes_exactly_the_due_jobs(store: JobStore) -> None:
    jobs = await every_combination(store)
    for now, retry in ((NOW - SECOND, False), (NOW, True)):
        expected = [
            j
            for j in jobs
            if (step := domain.next_step(j)) is not None
            and domain.is_due(
                j, step, now, check_interval_seconds=INTERVAL, retry_failed_fetch=retry
            )
        ]
        claimed = await store.leases.claim(
            len(jobs), now, check_interval_seconds=INTERVAL, retry_failed_fetch=retry
        )
        assert arns(claimed) == arns(expected)
        assert {j.claimed_by for j in claimed} == {store.owner}
        await store.leases.release()

"""The one rule for a job's next step (domain.next_step), as a table over every combination of
the fields it reads; the store's queries are checked against the same rule in tests/store."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from batch_poller.domain import (
    POLLABLE,
    RESULTS_STORED,
    WITH_RESULTS,
    BedrockStatus,
    JobStatus,
    Step,
    is_due,
    next_step,
)

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Job:
    status: JobStatus
    bedrock_status: BedrockStatus | None = None
    results_fetched_at: datetime | None = None
    cleanup_completed_at: datetime | None = None
    last_checked_at: datetime | None = None
    fetch_retry_at: datetime | None = None
    group_name: str | None = None
    group_compiled_at: datetime | None = None


def expected(job: Job) -> Step | None:
    """The rule written out as the path reads: store finished output, else ask Bedrock while
    it runs, else delete the folders of stored results; FAILED and cleaned jobs are done."""
    stored = job.results_fetched_at is not None
    if (
        job.status in {*POLLABLE, JobStatus.RESULT_FETCH_FAILED}
        and job.bedrock_status in WITH_RESULTS
        and not stored
    ):
        return Step.FETCH
    if job.status in POLLABLE:
        return Step.CHECK
    group_waits = job.group_name is not None and job.group_compiled_at is None
    if (
        job.status in RESULTS_STORED
        and stored
        and job.cleanup_completed_at is None
        and not group_waits
    ):
        return Step.CLEAN
    return None


# No group; in a group not compiled yet; in a compiled group.
GROUPS = [(None, None), ("analysis-7", None), ("analysis-7", NOW)]
COMBINATIONS = [
    Job(status, bedrock, fetched, cleaned, group_name=group, group_compiled_at=compiled)
    for status, bedrock, fetched, cleaned, (group, compiled) in itertools.product(
        JobStatus, [None, *BedrockStatus], [None, NOW], [None, NOW], GROUPS
    )
]


@pytest.mark.parametrize("job", COMBINATIONS, ids=repr)
def test_next_step_over_every_combination(job: Job) -> None:
    assert next_step(job) is expected(job)


def test_the_table_reaches_every_step_and_none() -> None:
    reached = {next_step(job) for job in COMBINATIONS}
    assert reached == {Step.FETCH, Step.CHECK, Step.CLEAN, None}


@pytest.mark.parametrize(
    ("job", "step", "interval", "retry", "due"),
    [
        (Job(JobStatus.IN_PROGRESS), Step.CHECK, 60, False, True),  # never checked
        (Job(JobStatus.IN_PROGRESS, last_checked_at=NOW), Step.CHECK, 60, False, False),
        (Job(JobStatus.IN_PROGRESS, last_checked_at=NOW), Step.CHECK, 0, False, True),
        (
            Job(JobStatus.IN_PROGRESS, last_checked_at=NOW - timedelta(seconds=60)),
            Step.CHECK,
            60,
            False,
            True,
        ),
        (Job(JobStatus.IN_PROGRESS), Step.FETCH, 60, False, True),
        (Job(JobStatus.RESULT_FETCH_FAILED), Step.FETCH, 60, False, False),  # only when asked
        (Job(JobStatus.RESULT_FETCH_FAILED), Step.FETCH, 60, True, True),
        (
            Job(JobStatus.RESULT_FETCH_FAILED, fetch_retry_at=NOW + timedelta(seconds=1)),
            Step.FETCH,
            60,
            False,
            False,
        ),
        (Job(JobStatus.RESULT_FETCH_FAILED, fetch_retry_at=NOW), Step.FETCH, 60, False, True),
        (Job(JobStatus.COMPLETED), Step.CLEAN, 60, False, True),
    ],
)
def test_when_a_step_is_due(job: Job, step: Step, interval: float, retry: bool, due: bool) -> None:
    assert is_due(job, step, NOW, check_interval_seconds=interval, retry_failed_fetch=retry) is due

"""Statuses and the pure decisions made about a job. No I/O, no imports from the package."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar


class BedrockStatus(StrEnum):
    """The ten statuses GetModelInvocationJob reports."""

    SUBMITTED = "Submitted"
    VALIDATING = "Validating"
    SCHEDULED = "Scheduled"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    PARTIALLY_COMPLETED = "PartiallyCompleted"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    EXPIRED = "Expired"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_BEDROCK


_TERMINAL_BEDROCK = frozenset(
    {
        BedrockStatus.COMPLETED,
        BedrockStatus.PARTIALLY_COMPLETED,
        BedrockStatus.FAILED,
        BedrockStatus.STOPPED,
        BedrockStatus.EXPIRED,
    }
)


class JobStatus(StrEnum):
    """The daemon's own view of a tracked job."""

    SUBMITTED = "SUBMITTED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    PARTIALLY_COMPLETED = "PARTIALLY_COMPLETED"
    FAILED = "FAILED"
    RESULT_FETCH_FAILED = "RESULT_FETCH_FAILED"


class GroupStatus(StrEnum):
    """A group of jobs: taking jobs, waiting for them, or compiled with one of three results."""

    OPEN = "OPEN"  # takes more jobs
    SEALED = "SEALED"  # takes no more; compiled once every job has settled
    COMPLETED = "COMPLETED"
    PARTIALLY_COMPLETED = "PARTIALLY_COMPLETED"  # some records failed or were not processed
    FAILED = "FAILED"  # a job of it failed

    @property
    def is_compiled(self) -> bool:
        return self not in (GroupStatus.OPEN, GroupStatus.SEALED)


# A job has settled when nothing more will come of it on its own: its results are stored, or
# it failed. A group is compiled once all its jobs have.
SETTLED = frozenset({JobStatus.COMPLETED, JobStatus.PARTIALLY_COMPLETED, JobStatus.FAILED})

GROUP_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\Z")


def check_group_name(name: str) -> str:
    """The name as given, or ValueError saying what a group name may hold."""
    if not GROUP_NAME_PATTERN.match(name):
        raise ValueError(
            f"not a group name: {name!r} (1 to 128 letters, digits and . _ : @ -, "
            "starting with a letter or digit)"
        )
    return name


def parse_group_status(text: str) -> GroupStatus:
    """A group status a user typed, in any case; ValueError naming the ones there are."""
    return _parsed(GroupStatus, text, "group status")


def parse_job_status(text: str) -> JobStatus:
    """A status a user typed, in any case; ValueError naming the ones there are."""
    return _parsed(JobStatus, text, "status")


_S = TypeVar("_S", bound=StrEnum)


def _parsed(kind: type[_S], text: str, what: str) -> _S:
    try:
        return kind(text.upper())
    except ValueError:
        names = ", ".join(s.value for s in kind)
        raise ValueError(f"unknown {what} {text!r}: one of {names}") from None


JOB_ARN_PATTERN = re.compile(
    r"^arn:aws(-[^:]+)?:bedrock:(?P<region>[a-z0-9-]{1,20}):(?P<account>[0-9]{12})"
    r":model-invocation-job/(?P<job_id>[a-z0-9]{12})\Z"
)


def job_id_from_arn(job_arn: str) -> str:
    """The job id is the last segment of the ARN; Bedrock writes output under it."""
    match = JOB_ARN_PATTERN.match(job_arn)
    if match is None:
        raise ValueError(f"not a Bedrock batch job ARN: {job_arn!r}")
    return match.group("job_id")


# Bedrock's status -> the daemon's, before results are stored. A finished job with output stays
# IN_PROGRESS until its records are safely stored; only then does it become COMPLETED.
_STATUS_MAP = {
    BedrockStatus.SUBMITTED: JobStatus.IN_PROGRESS,
    BedrockStatus.VALIDATING: JobStatus.IN_PROGRESS,
    BedrockStatus.SCHEDULED: JobStatus.IN_PROGRESS,
    BedrockStatus.IN_PROGRESS: JobStatus.IN_PROGRESS,
    BedrockStatus.STOPPING: JobStatus.IN_PROGRESS,
    BedrockStatus.COMPLETED: JobStatus.IN_PROGRESS,
    BedrockStatus.PARTIALLY_COMPLETED: JobStatus.IN_PROGRESS,
    BedrockStatus.FAILED: JobStatus.FAILED,
    BedrockStatus.STOPPED: JobStatus.FAILED,
    BedrockStatus.EXPIRED: JobStatus.FAILED,
}


def internal_status(status: BedrockStatus) -> JobStatus:
    return _STATUS_MAP[status]


def has_results(status: BedrockStatus) -> bool:
    """Bedrock finished this job and wrote output that must be stored."""
    return status in WITH_RESULTS


def final_status(status: BedrockStatus) -> JobStatus:
    """The status a job with results takes once they are stored."""
    if status is BedrockStatus.PARTIALLY_COMPLETED:
        return JobStatus.PARTIALLY_COMPLETED
    return JobStatus.COMPLETED


def retry_delay(attempt: int, base_seconds: float) -> float:
    """Seconds to wait after the given failed fetch attempt: base, 2 x base, 4 x base, ..."""
    return float(base_seconds * 2 ** (attempt - 1))


def auto_retry_delay(failures: int, base_seconds: float, max_seconds: float) -> float | None:
    """Seconds until a job whose fetch failed `failures` times is tried again by itself: the
    base, doubling with every failure, capped. None when automatic retries are off (base 0)."""
    if base_seconds <= 0:
        return None
    return float(min(base_seconds * 2 ** max(failures - 1, 0), max_seconds))


# -- the next step: one rule, read by the tracker, the store's queries and the counts ----------


class Step(StrEnum):
    """What a tracked job needs next."""

    FETCH = "fetch"  # Bedrock finished with output that is not stored yet
    CHECK = "check"  # ask Bedrock for the job's status
    CLEAN = "clean"  # results stored: delete the job's S3 folders


class JobState(Protocol):
    """The fields of a job that decide its next step."""

    @property
    def status(self) -> JobStatus: ...
    @property
    def bedrock_status(self) -> BedrockStatus | None: ...
    @property
    def results_fetched_at(self) -> datetime | None: ...
    @property
    def cleanup_completed_at(self) -> datetime | None: ...
    @property
    def group_name(self) -> str | None: ...
    @property
    def group_compiled_at(self) -> datetime | None: ...


class TimedJobState(JobState, Protocol):
    """The fields that also decide when that step is due."""

    @property
    def last_checked_at(self) -> datetime | None: ...
    @property
    def fetch_retry_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class StepRule:
    """A job needs `step` when every condition holds; None means "any"."""

    step: Step
    statuses: frozenset[JobStatus]
    bedrock_statuses: frozenset[BedrockStatus] | None = None
    results_stored: bool | None = None
    cleaned: bool | None = None
    # The job's group, if it has one, is compiled.
    group_done: bool | None = None

    def matches(self, job: JobState) -> bool:
        return (
            job.status in self.statuses
            and (self.bedrock_statuses is None or job.bedrock_status in self.bedrock_statuses)
            and (self.results_stored is None or self.results_stored is _set(job.results_fetched_at))
            and (self.cleaned is None or self.cleaned is _set(job.cleanup_completed_at))
            and (self.group_done is None or self.group_done is group_done(job))
        )


def group_done(job: JobState) -> bool:
    """Nothing in the job's group waits for it: it has none, or it was compiled."""
    return job.group_name is None or job.group_compiled_at is not None


def _set(value: datetime | None) -> bool:
    return value is not None


POLLABLE = frozenset({JobStatus.SUBMITTED, JobStatus.IN_PROGRESS})
RESULTS_STORED = frozenset({JobStatus.COMPLETED, JobStatus.PARTIALLY_COMPLETED})
WITH_RESULTS = frozenset({BedrockStatus.COMPLETED, BedrockStatus.PARTIALLY_COMPLETED})

# The first rule that matches names the step. FAILED and a stored, cleaned job need nothing.
STEP_RULES: tuple[StepRule, ...] = (
    # Finished at Bedrock with output we have not stored; a failed fetch waits for its retry.
    StepRule(
        Step.FETCH,
        POLLABLE | {JobStatus.RESULT_FETCH_FAILED},
        bedrock_statuses=WITH_RESULTS,
        results_stored=False,
    ),
    StepRule(Step.CHECK, POLLABLE),
    # A job's folders wait for its group's compile (which reads nothing from S3, but the
    # application's result must exist before its sources go).
    StepRule(Step.CLEAN, RESULTS_STORED, results_stored=True, cleaned=False, group_done=True),
)
RULE_OF = {rule.step: rule for rule in STEP_RULES}


def next_step(job: JobState) -> Step | None:
    """The step the job needs next, or None when the daemon is done with it."""
    for rule in STEP_RULES:
        if rule.matches(job):
            return rule.step
    return None


def is_due(
    job: TimedJobState,
    step: Step,
    now: datetime,
    *,
    check_interval_seconds: float,
    retry_failed_fetch: bool = False,
) -> bool:
    """Whether that step may run now: a check once the interval has passed since the last,
    a failed fetch once its retry is due (or when asked), a cleanup at once."""
    if step is Step.CHECK:
        last = job.last_checked_at
        return (
            check_interval_seconds <= 0
            or last is None
            or last <= now - timedelta(seconds=check_interval_seconds)
        )
    if step is Step.FETCH and job.status is JobStatus.RESULT_FETCH_FAILED:
        retry_at = job.fetch_retry_at
        return retry_failed_fetch or (retry_at is not None and retry_at <= now)
    return True

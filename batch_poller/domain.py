"""Statuses and the pure decisions made about a job. No I/O, no imports from the package."""

from __future__ import annotations

import re
from enum import StrEnum


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


def parse_job_status(text: str) -> JobStatus:
    """A status a user typed, in any case; ValueError naming the ones there are."""
    try:
        return JobStatus(text.upper())
    except ValueError:
        names = ", ".join(s.value for s in JobStatus)
        raise ValueError(f"unknown status {text!r}: one of {names}") from None


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
    return status in (BedrockStatus.COMPLETED, BedrockStatus.PARTIALLY_COMPLETED)


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

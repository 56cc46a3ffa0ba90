"""One emulated job and the pure rules that move it through Bedrock's ten statuses."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from batch_poller.domain import BedrockStatus
from batch_poller.emulator.settings import Durations, Faults, JobOptions

S = BedrockStatus


@dataclass
class EmulatedJob:
    sequence: int
    job_id: str
    job_arn: str
    job_name: str
    model_id: str
    role_arn: str
    input_uri: str
    output_uri: str
    timeout_hours: int
    submit_time: datetime
    client_request_token: str | None
    tags: dict[str, str]
    options: JobOptions
    status: BedrockStatus = S.SUBMITTED
    message: str | None = None
    last_modified_time: datetime | None = None
    end_time: datetime | None = None
    # Clock seconds at which the current status began.
    status_since: float = 0.0
    # Set by the control API: the next transition is due now, whatever the clock says.
    advance_requested: bool = False
    faults: Faults | None = None
    fault_calls: int = 0
    history: list[BedrockStatus] = field(default_factory=list)
    vpc_config: dict[str, list[str]] | None = None
    # The record counts newer Bedrock models report: known once validated, growing while the
    # job is InProgress, the manifest's once it finished.
    counts: RecordCounts | None = None


@dataclass
class RecordCounts:
    total: int
    processed: int = 0
    success: int = 0
    error: int = 0

    def as_document(self) -> dict[str, int]:
        return {
            "totalRecordCount": self.total,
            "processedRecordCount": self.processed,
            "successRecordCount": self.success,
            "errorRecordCount": self.error,
        }

    def progress(self, share: float, error_rate: float) -> None:
        """A running job's counts after `share` of its time InProgress."""
        self.processed = math.floor(self.total * min(max(share, 0.0), 1.0))
        self.error = math.floor(self.processed * error_rate)
        self.success = self.processed - self.error


def next_transition(job: EmulatedJob, durations: Durations) -> tuple[float, BedrockStatus] | None:
    """When the job leaves its status (clock seconds) and for which status; None if final."""
    if job.status.is_terminal:
        return None
    target = _successor(job)
    if job.advance_requested:
        return job.status_since, target
    if job.status is S.SCHEDULED:
        timeout = job.timeout_hours * durations.seconds_per_timeout_hour
        waits_forever = job.options.outcome == "Expired"
        wait = math.inf if waits_forever else durations.scheduled
        if wait >= timeout:
            return job.status_since + timeout, S.EXPIRED
        return job.status_since + wait, target
    return job.status_since + _duration(job.status, durations), target


def _successor(job: EmulatedJob) -> BedrockStatus:
    match job.status:
        case S.SUBMITTED:
            return S.VALIDATING
        case S.VALIDATING:
            return S.SCHEDULED
        case S.SCHEDULED:
            return S.EXPIRED if job.options.outcome == "Expired" else S.IN_PROGRESS
        case S.IN_PROGRESS:
            return S(job.options.outcome)
        case S.STOPPING:
            return S.STOPPED
    raise ValueError(f"{job.status} has no successor")


def _duration(status: BedrockStatus, durations: Durations) -> float:
    return {
        S.SUBMITTED: durations.submitted,
        S.VALIDATING: durations.validating,
        S.IN_PROGRESS: durations.in_progress,
        S.STOPPING: durations.stopping,
    }[status]


STOPPABLE = frozenset({S.SUBMITTED, S.VALIDATING, S.SCHEDULED, S.IN_PROGRESS})

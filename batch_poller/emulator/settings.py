"""What the emulator can be told: timings, outcomes, faults. Changed at run time over /_emulator."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FinalOutcome = Literal["Completed", "PartiallyCompleted", "Failed", "Expired"]
PermanentError = Literal[
    "AccessDeniedException", "ResourceNotFoundException", "ServiceQuotaExceededException"
]


class Faults(BaseModel):
    """Failures injected into Bedrock calls, for the whole emulator or for one job's calls."""

    model_config = ConfigDict(extra="forbid")

    throttle_rate: float = Field(0.0, ge=0, le=1, description="share of calls throttled (429)")
    server_error_rate: float = Field(0.0, ge=0, le=1, description="share of calls failing 5xx")
    latency_ms: float = Field(0.0, ge=0, le=60_000, description="added to every call")
    answer_delay_ms: float = Field(
        0.0,
        ge=0,
        le=600_000,
        description="the call is carried out, then answered this much later: a client that"
        " dies meanwhile never learns what it did",
    )
    permanent_error: PermanentError | None = None
    permanent_from_call: int = Field(
        1, ge=1, description="the permanent error starts at this call, counted from when set"
    )
    operations: (
        list[
            Literal[
                "CreateModelInvocationJob",
                "GetModelInvocationJob",
                "ListModelInvocationJobs",
                "StopModelInvocationJob",
            ]
        ]
        | None
    ) = Field(None, description="only these operations get the faults; null: all")


class Durations(BaseModel):
    """Seconds a job spends in each status before moving on."""

    model_config = ConfigDict(extra="forbid")

    submitted: float = Field(1.0, ge=0)
    validating: float = Field(1.0, ge=0)
    scheduled: float = Field(2.0, ge=0)
    in_progress: float = Field(4.0, ge=0)
    stopping: float = Field(1.0, ge=0)
    # timeoutDurationInHours is read as this many seconds per hour: 24 hours become 24 s.
    seconds_per_timeout_hour: float = Field(1.0, gt=0)


class JobOptions(BaseModel):
    """How one job ends. Set per job through tags (`emulator:<name>`) or the control API."""

    model_config = ConfigDict(extra="forbid")

    outcome: FinalOutcome = "Completed"
    error_rate: float = Field(0.0, ge=0, le=1, description="share of processed records failing")
    error_code: int = Field(
        400,
        ge=400,
        le=599,
        description="the code of its error records: 400 (a validation error) or a retryable one",
    )
    unprocessed_rate: float = Field(
        0.25, gt=0, lt=1, description="share of records a PartiallyCompleted job leaves out"
    )
    failure_message: str = "The batch inference job failed: an internal error occurred."
    invocation_type: Literal["InvokeModel", "Converse"] = "InvokeModel"


class EmulatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    durations: Durations = Field(default_factory=Durations)
    defaults: JobOptions = Field(default_factory=JobOptions)
    faults: Faults = Field(default_factory=Faults)
    events_queue_url: str | None = Field(
        None, description="SQS queue that receives EventBridge state-change events"
    )
    embedding_dimensions: int = Field(16, ge=1, le=8192)
    seed: int = 0

"""The rows the daemon reads and writes: a tracked job, a result record, a job's record totals.

Plain values, shared by the store, the parser, the cleanup guards and the views, so none of
those imports the persistence layer to name what it handles."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from batch_poller.domain import BedrockStatus, GroupStatus, JobStatus


@dataclass(frozen=True, slots=True)
class Progress:
    """Bedrock's record counts of a job: processed so far, of how many. Either may be
    unknown (a job still validating, a region or API version that does not report them)."""

    processed: int | None = None
    total: int | None = None


NO_PROGRESS = Progress()


@dataclass(frozen=True, slots=True)
class NewJob:
    """What the daemon knows about a job when it starts tracking it."""

    arn: str
    job_id: str | None = None  # derived from the ARN when None
    job_name: str | None = None
    model_id: str | None = None
    bedrock_status: BedrockStatus | None = None
    status: JobStatus = JobStatus.SUBMITTED
    message: str | None = None
    input_s3_uri: str | None = None
    output_s3_prefix: str | None = None
    s3_folder: str | None = None
    submitted_at: datetime | None = None
    completed_at: datetime | None = None
    progress: Progress = NO_PROGRESS
    # When Bedrock was read for it, if it was: that read is the job's first check.
    checked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class JobRow:
    """One row of bedrock_batch_jobs."""

    batch_job_arn: str
    job_id: str
    job_name: str | None
    model_id: str | None
    status: JobStatus
    bedrock_status: BedrockStatus | None
    message: str | None
    input_s3_uri: str | None
    s3_folder: str | None
    output_s3_prefix: str | None
    submitted_at: datetime | None
    last_checked_at: datetime | None
    completed_at: datetime | None
    results_fetched_at: datetime | None
    results_fetch_attempts: int
    last_error: str | None
    cleanup_completed_at: datetime | None
    cleanup_attempts: int
    total_records: int | None
    success_records: int | None
    error_records: int | None
    input_tokens: int | None
    output_tokens: int | None
    cost: Decimal | None
    bytes_freed: int | None
    created_at: datetime
    updated_at: datetime
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    fetch_failures: int = 0
    fetch_retry_at: datetime | None = None
    group_name: str | None = None
    group_compiled_at: datetime | None = None
    progress_processed: int | None = None
    progress_total: int | None = None
    # A resubmission: the job whose records it runs again.
    retries_of: str | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> JobRow:
        values = dict(row)
        values["status"] = JobStatus(values["status"])
        if values["bedrock_status"] is not None:
            values["bedrock_status"] = BedrockStatus(values["bedrock_status"])
        return cls(**values)


class RecordRow(NamedTuple):
    """One result record, as an ingester produces it. A tuple in the store's column order:
    millions are made, and a tuple is made, and handed to the driver, for a fraction of what a
    dataclass costs."""

    record_id: str
    outcome: str  # "ok" | "error"
    model_output: str | None = None
    model_input: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    source_file: str | None = None
    line_number: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: Decimal | None = None
    raw_text: str | None = None
    # The line's exact bytes, set only when raw_text cannot hold them.
    raw_bytes: bytes | None = None


@dataclass(frozen=True, slots=True)
class RecordTotals:
    """Aggregates over one job's stored records."""

    total: int = 0
    ok: int = 0
    error: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    # None when no record has a cost: the model had no price, which is not a cost of zero.
    cost: Decimal | None = None
    by_error_code: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupRow:
    """One row of job_groups: the application's unit of work, and once compiled its totals."""

    name: str
    status: GroupStatus
    sealed_at: datetime | None
    compiled_at: datetime | None
    jobs: int | None
    failed_jobs: int | None
    total_records: int | None
    success_records: int | None
    error_records: int | None
    input_tokens: int | None
    output_tokens: int | None
    cost: Decimal | None
    first_submitted_at: datetime | None
    last_completed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> GroupRow:
        values = dict(row)
        values["status"] = GroupStatus(values["status"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class SubmissionRow:
    """One job this project submits, from before its creation until it is tracked."""

    client_token: str
    job_name: str
    model_id: str
    role_arn: str
    input_uri: str
    output_uri: str
    input_folder: str
    timeout_hours: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    group_name: str | None = None
    # A resubmission: the job whose records it runs again, and whose group it joins.
    retries_of: str | None = None
    # The group is sealed once every job of this submission is tracked.
    seals_group: bool = False
    state: str = "queued"  # "queued", "creating", "tracked" or "refused"
    arn: str | None = None
    last_error: str | None = None

    def as_values(self) -> dict[str, Any]:
        """The row as the table's columns."""
        return {
            "client_token": self.client_token,
            "job_name": self.job_name,
            "model_id": self.model_id,
            "role_arn": self.role_arn,
            "input_uri": self.input_uri,
            "output_uri": self.output_uri,
            "input_folder": self.input_folder,
            "timeout_hours": self.timeout_hours,
            "tags": json.dumps(dict(self.tags), sort_keys=True),
            "group_name": self.group_name,
            "retries_of": self.retries_of,
            "seals_group": int(self.seals_group),
            "state": self.state,
            "batch_job_arn": self.arn,
            "last_error": self.last_error,
        }

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> SubmissionRow:
        return cls(
            client_token=row["client_token"],
            job_name=row["job_name"],
            model_id=row["model_id"],
            role_arn=row["role_arn"],
            input_uri=row["input_uri"],
            output_uri=row["output_uri"],
            input_folder=row["input_folder"],
            timeout_hours=row["timeout_hours"],
            tags=json.loads(row["tags"]),
            group_name=row["group_name"],
            retries_of=row["retries_of"],
            seals_group=bool(row["seals_group"]),
            state=row["state"],
            arn=row["batch_job_arn"],
            last_error=row["last_error"],
        )

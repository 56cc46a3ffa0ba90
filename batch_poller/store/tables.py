"""The current schema. migrations.py must arrive at exactly this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = 9


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on both dialects.

    PostgreSQL keeps the zone (timestamptz); SQLite stores naive text, which we
    write as UTC and read back as UTC. Naive input is refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware datetimes")
        value = value.astimezone(UTC)
        # SQLite's text format would silently drop the zone; keep comparisons lexical.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Decimal out of both dialects (SQLite keeps a REAL, so ~15 significant digits).
MONEY = Numeric(18, 8)


metadata = MetaData()

bedrock_batch_jobs = Table(
    "bedrock_batch_jobs",
    metadata,
    Column("batch_job_arn", Text, primary_key=True),
    Column("job_id", Text, nullable=False),
    Column("job_name", Text),
    Column("model_id", Text),
    Column("status", Text, nullable=False),
    Column("bedrock_status", Text),
    Column("message", Text),
    Column("input_s3_uri", Text),
    Column("s3_folder", Text),
    Column("output_s3_prefix", Text),
    Column("submitted_at", UTCDateTime),
    Column("last_checked_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("results_fetched_at", UTCDateTime),
    Column("results_fetch_attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("cleanup_completed_at", UTCDateTime),
    Column("cleanup_attempts", Integer, nullable=False, server_default="0"),
    Column("total_records", Integer),
    Column("success_records", Integer),
    Column("error_records", Integer),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("cost", MONEY),
    Column("bytes_freed", BigInteger),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # A lease: the daemon that works on this job, until when (see store/leases.py).
    Column("claimed_by", Text),
    Column("claimed_until", UTCDateTime),
    # Times the job's fetch failed all its retries, and when it is tried again by itself.
    Column("fetch_failures", Integer, nullable=False, server_default="0"),
    Column("fetch_retry_at", UTCDateTime),
    # The application's unit of work the job belongs to (job_groups), and when that group was
    # compiled: the job's folders wait for it.
    Column("group_name", Text),
    Column("group_compiled_at", UTCDateTime),
    # Bedrock's own count of the records it has processed, of how many, while the job runs.
    Column("progress_processed", Integer),
    Column("progress_total", Integer),
    # A resubmission: the job whose records it runs again (its group holds both).
    Column("retries_of", Text),
    Index("ix_bedrock_batch_jobs_status_checked", "status", "last_checked_at"),
    Index("ix_bedrock_batch_jobs_job_id", "job_id"),
    Index("ix_bedrock_batch_jobs_claimed_by", "claimed_by"),
    Index("ix_bedrock_batch_jobs_group_name", "group_name"),
)

batch_records = Table(
    "batch_records",
    metadata,
    Column(
        "batch_job_arn",
        Text,
        ForeignKey("bedrock_batch_jobs.batch_job_arn", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("record_id", Text, primary_key=True),
    Column("outcome", Text, nullable=False),
    Column("model_output", Text),
    Column("model_input", Text),
    Column("error_code", Text),
    Column("error_message", Text),
    Column("source_file", Text),
    Column("line_number", Integer),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cost", MONEY),
    Column("stored_at", UTCDateTime, nullable=False),
    # The line as read, for lines that could not be parsed (error_code PARSE_ERROR).
    Column("raw_text", Text),
    # The exact bytes of such a line, when raw_text cannot hold them (invalid UTF-8, NUL).
    Column("raw_bytes", LargeBinary),
    CheckConstraint("outcome IN ('ok', 'error')", name="ck_batch_records_outcome"),
    # An application looks its work items up by their record id, across jobs.
    Index("ix_batch_records_record_id", "record_id"),
)

# A named unit of the application's work made of one or more jobs (store/groups.py): it takes
# jobs until sealed, and is compiled once every job of it has settled.
job_groups = Table(
    "job_groups",
    metadata,
    Column("name", Text, primary_key=True),
    Column("status", Text, nullable=False),  # domain.GroupStatus
    Column("sealed_at", UTCDateTime),
    Column("compiled_at", UTCDateTime),
    Column("jobs", Integer),
    Column("failed_jobs", Integer),
    Column("total_records", BigInteger),
    Column("success_records", BigInteger),
    Column("error_records", BigInteger),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("cost", MONEY),
    Column("first_submitted_at", UTCDateTime),
    Column("last_completed_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The outbox (store/outbox.py): every job settle and group compile, written in the transaction
# that made it, and sent to the hooks from here.
_EVENT_KEY = BigInteger().with_variant(Integer, "sqlite")  # SQLite's rowid is its key
events = Table(
    "events",
    metadata,
    Column("id", _EVENT_KEY, primary_key=True, autoincrement=True),
    Column("event_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("batch_job_arn", Text),
    Column("group_name", Text),
    Column("payload", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("uq_events_event_id", "event_id", unique=True),
)

# One event's delivery to one hook: pending (with its next attempt), delivered, or dead.
hook_deliveries = Table(
    "hook_deliveries",
    metadata,
    Column("id", _EVENT_KEY, primary_key=True, autoincrement=True),
    Column("event", _EVENT_KEY, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("hook", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("delivered_at", UTCDateTime),
    Column("claimed_by", Text),
    Column("claimed_until", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="ck_hook_deliveries_state"),
    Index("ix_hook_deliveries_due", "hook", "state", "next_attempt_at"),
    Index("uq_hook_deliveries_event_hook", "event", "hook", unique=True),
)

# The processes that share the database (store/replicas.py): who, where, and when last seen.
replicas = Table(
    "replicas",
    metadata,
    Column("owner", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    # Processes with the same key can tell by a pid whether the other still runs.
    Column("local_key", Text, nullable=False),
    Column("role", Text, nullable=False),  # "daemon" or "command"
    Column("started_at", UTCDateTime, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    Column("last_pass_at", UTCDateTime),
)

# Jobs submitted by this project, from before CreateModelInvocationJob until they are tracked:
# "queued" waits for room under the model's quota, "creating" may have been created (its
# client token makes a retry return the same job), "tracked" is done, "refused" was refused
# by Bedrock for good (last_error says why).
submissions = Table(
    "submissions",
    metadata,
    Column("client_token", Text, primary_key=True),
    Column("job_name", Text, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("role_arn", Text, nullable=False),
    Column("input_uri", Text, nullable=False),
    Column("output_uri", Text, nullable=False),
    Column("input_folder", Text, nullable=False),
    Column("timeout_hours", Integer),
    Column("tags", Text, nullable=False),  # a JSON object
    Column("group_name", Text),
    # A resubmission: the job whose records it runs again, and whose group it joins.
    Column("retries_of", Text),
    # 1: the group is sealed once every job of this submission is tracked.
    Column("seals_group", Integer, nullable=False, server_default="0"),
    Column("state", Text, nullable=False),
    Column("batch_job_arn", Text),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "state IN ('queued', 'creating', 'tracked', 'refused')", name="ck_submissions_state"
    ),
    Index("ix_submissions_state", "state", "created_at"),
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
)

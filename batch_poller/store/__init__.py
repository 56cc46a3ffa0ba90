"""Persistence for tracked jobs and their result records (SQLite or PostgreSQL)."""

from batch_poller.store.engine import make_engine
from batch_poller.store.errors import StoreError, describe_database_error
from batch_poller.store.jobs import (
    Activity,
    JobRow,
    JobStore,
    NewJob,
    RecordRow,
    RecordTotals,
    UnknownJobError,
    WriteReport,
    open_store,
    stored_record_id,
    stored_text,
)
from batch_poller.store.migrations import current_version, upgrade

__all__ = [
    "Activity",
    "JobRow",
    "JobStore",
    "NewJob",
    "RecordRow",
    "RecordTotals",
    "StoreError",
    "UnknownJobError",
    "WriteReport",
    "current_version",
    "describe_database_error",
    "make_engine",
    "open_store",
    "stored_record_id",
    "stored_text",
    "upgrade",
]

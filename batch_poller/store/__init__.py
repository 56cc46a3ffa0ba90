"""Persistence for tracked jobs and their result records (SQLite or PostgreSQL)."""

from batch_poller.rows import GroupRow, JobRow, NewJob, RecordRow, RecordTotals
from batch_poller.store.engine import make_engine
from batch_poller.store.errors import StoreError, describe_database_error
from batch_poller.store.groups import GroupError
from batch_poller.store.guards import LeaseLost, StaleTransition, UnknownJobError
from batch_poller.store.jobs import JobStore, open_store
from batch_poller.store.migrations import current_version, upgrade
from batch_poller.store.reads import Activity
from batch_poller.store.records import RecordScope, RetryRecord, StoredRecord, WriteReport
from batch_poller.store.text import stored_record_id, stored_text
from batch_poller.store.transitions import Check

__all__ = [
    "Activity",
    "Check",
    "GroupError",
    "GroupRow",
    "JobRow",
    "JobStore",
    "LeaseLost",
    "NewJob",
    "RecordRow",
    "RecordScope",
    "RecordTotals",
    "RetryRecord",
    "StaleTransition",
    "StoreError",
    "StoredRecord",
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

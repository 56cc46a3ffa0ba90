"""Persistence for tracked jobs and their result records (SQLite or PostgreSQL)."""

from batch_poller.store.engine import make_engine
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
)
from batch_poller.store.migrations import current_version, upgrade

__all__ = [
    "Activity",
    "JobRow",
    "JobStore",
    "NewJob",
    "RecordRow",
    "RecordTotals",
    "UnknownJobError",
    "WriteReport",
    "current_version",
    "make_engine",
    "open_store",
    "upgrade",
]

"""Jobs and the daemon's state as JSON-ready documents: what the CLI prints and the API sends."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any

from batch_poller import __version__
from batch_poller.domain import JobStatus, Step, group_done, next_step
from batch_poller.rows import JobRow
from batch_poller.supervisor import Supervisor, replica_liveness

TABLE_COLUMNS = (
    "batch_job_arn",
    "job_id",
    "job_name",
    "status",
    "bedrock_status",
    "total_records",
    "success_records",
    "error_records",
    "cost",
    "cleanup",
    "auto_processing",
    "last_checked_at",
    "reason",
    "group_name",
    "progress_processed",
    "progress_total",
)


def job_summary(job: JobRow) -> dict[str, Any]:
    """The columns of `jobs`, as JSON-ready values."""
    row = job_document(job)
    return {column: row[column] for column in TABLE_COLUMNS}


def job_list_item(job: JobRow) -> dict[str, Any]:
    """A job in the API's list: the columns of `jobs`, and Bedrock's message and the daemon's
    last error, so a failed job can show both when they differ."""
    row = job_document(job)
    return {
        **{column: row[column] for column in TABLE_COLUMNS},
        "message": row["message"],
        "last_error": row["last_error"],
    }


def job_document(job: JobRow) -> dict[str, Any]:
    """Every column of a job, JSON-ready, plus its cleanup state."""
    row = {key: _plain(value) for key, value in dataclasses.asdict(job).items()}
    row["cleanup"] = cleanup_state(job)
    row["auto_processing"] = auto_processing(job)
    row["reason"] = failure_reason(job)
    return row


def records_shown(job: JobRow, count: Callable[[int], str] = str) -> str:
    """The records of a job in one cell: those stored, or while it runs Bedrock's progress
    (processed of total), or `-` when neither is known; each number written by `count`."""
    if job.total_records is not None:
        return count(job.total_records)
    if job.progress_total is not None:
        done = "?" if job.progress_processed is None else count(job.progress_processed)
        return f"{done}/{count(job.progress_total)}"
    return "-"


def failure_reason(job: JobRow) -> str | None:
    """Why a job failed, its fetch failed, or its cleanup failed; None when nothing did."""
    if job.status is JobStatus.FAILED:
        return job.last_error or job.message
    if job.status is JobStatus.RESULT_FETCH_FAILED:
        return job.last_error
    if job.cleanup_completed_at is None and job.cleanup_attempts:
        return job.last_error
    return None


def why_folders_are_kept(job: JobRow) -> str:
    """Why a job that is not cleaned up is not due for its cleanup, in one line."""
    arn = job.batch_job_arn
    if job.status is JobStatus.FAILED:
        return f"{arn} is FAILED: its S3 folders are kept (they hold what is left of it)"
    if job.results_fetched_at is not None and not group_done(job):
        return (
            f"{arn} waits for its group {job.group_name!r} to be compiled: its S3 folders go "
            f"once every job of the group has settled and the group is sealed "
            f"(`batch-poller groups seal {job.group_name}`)"
        )
    status = job.status.value
    return f"{arn} is {status}: its results are not stored yet, so its S3 folders are kept"


def cleanup_state(job: JobRow) -> str:
    """done, failed (retried every pass), pending, waiting (results not stored yet), or kept
    (a failed job's files are never deleted)."""
    if job.cleanup_completed_at is not None:
        return "done"
    if job.cleanup_attempts:
        return "failed"
    if next_step(job) is Step.CLEAN:
        return "pending"
    return "kept" if job.status in (JobStatus.FAILED, JobStatus.RESULT_FETCH_FAILED) else "waiting"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:f}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def auto_processing(job: JobRow) -> bool:
    """The daemon will move this job on by itself: it awaits a check, a fetch or a cleanup."""
    step = next_step(job)
    return step in (Step.CHECK, Step.FETCH) or (step is Step.CLEAN and not job.cleanup_attempts)


async def status_document(supervisor: Supervisor, started_monotonic: float) -> dict[str, Any]:
    """The poller's state: GET /api/batch/poller/status and `batch-poller status`."""
    rt = supervisor.rt
    now = rt.clock.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    activity = await rt.store.activity(today)
    state = "stopping" if rt.stopping.is_set() else "paused" if supervisor.paused else "running"
    return {
        "state": state,
        "last_pass_at": _plain(supervisor.last_pass_at),
        "next_pass_at": None if supervisor.paused else _plain(supervisor.next_pass_at),
        "passes": supervisor.passes,
        "jobs_pending": activity.pending,
        "completed_today": activity.completed_since,
        "failed_today": activity.failed_since,
        "cleanups_pending": activity.cleanups_pending,
        "jobs_in_flight": len(supervisor.in_flight),
        # This process, and every process sharing the database with the jobs each holds.
        "replica": supervisor.owner,
        "replicas": [
            replica.as_dict()
            for replica in await rt.store.replicas.live(now, replica_liveness(rt.settings))
        ],
        # health, failed_passes, failing_since, last_error: passes failing in a row, and why.
        **supervisor.health.as_dict(),
        "uptime_seconds": round(time.monotonic() - started_monotonic, 1),
        "version": __version__,
        # The event consumer's counts, when one runs ([events] sqs_queue_url).
        "events": None if supervisor.events is None else supervisor.events.as_dict(),
    }

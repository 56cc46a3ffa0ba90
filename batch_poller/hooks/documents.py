"""What an event says about its job or group: the totals, never the records."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from batch_poller.rows import GroupRow, JobRow


def job_part(job: JobRow) -> dict[str, Any]:
    return {
        "job": {
            "batch_job_arn": job.batch_job_arn,
            "job_id": job.job_id,
            "job_name": job.job_name,
            "model_id": job.model_id,
            "group": job.group_name,
            "status": job.status.value,
            "bedrock_status": None if job.bedrock_status is None else job.bedrock_status.value,
            "message": job.message,
            "last_error": job.last_error,
            "records": {
                "total": job.total_records,
                "ok": job.success_records,
                "error": job.error_records,
            },
            "input_tokens": job.input_tokens,
            "output_tokens": job.output_tokens,
            "cost": _money(job.cost),
            "submitted_at": _time(job.submitted_at),
            "completed_at": _time(job.completed_at),
            "results_stored_at": _time(job.results_fetched_at),
        }
    }


def group_part(group: GroupRow) -> dict[str, Any]:
    return {"group": group_document(group)}


def group_document(group: GroupRow) -> dict[str, Any]:
    """A group as the CLI, the API and the hooks show it."""
    return {
        "name": group.name,
        "status": group.status.value,
        "jobs": group.jobs,
        "failed_jobs": group.failed_jobs,
        "records": {
            "total": group.total_records,
            "ok": group.success_records,
            "error": group.error_records,
        },
        "input_tokens": group.input_tokens,
        "output_tokens": group.output_tokens,
        "cost": _money(group.cost),
        "first_submitted_at": _time(group.first_submitted_at),
        "last_completed_at": _time(group.last_completed_at),
        "sealed_at": _time(group.sealed_at),
        "compiled_at": _time(group.compiled_at),
        "created_at": _time(group.created_at),
    }


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()

"""Jobs written straight into the store, for lists and charts that need many of them or
timestamps no emulator run would give."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

from batch_poller.domain import JobStatus
from batch_poller.rows import NewJob
from batch_poller.store import JobStore
from batch_poller.store.tables import bedrock_batch_jobs

ARN_PREFIX = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/"


def job_arn(n: int) -> str:
    return f"{ARN_PREFIX}{n:012d}"


async def insert_job(
    store: JobStore,
    n: int,
    now: datetime,
    *,
    name: str | None = None,
    status: JobStatus = JobStatus.IN_PROGRESS,
    **columns: Any,
) -> str:
    """Job number n, submitted n minutes before `now`; `columns`: values set after (timestamps,
    counts, errors)."""
    arn = job_arn(n)
    job = NewJob(
        arn,
        job_name=name if name is not None else f"stored-{n}",
        status=status,
        submitted_at=now - timedelta(minutes=n),
    )
    await store.track_job(job, now)
    if columns:
        await set_columns(store, arn, **columns)
    return arn


async def set_columns(store: JobStore, arn: str, **columns: Any) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            update(bedrock_batch_jobs)
            .where(bedrock_batch_jobs.c.batch_job_arn == arn)
            .values(**columns)
        )

"""What the daemon, the CLI and the page read about jobs. No writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from batch_poller.domain import JobStatus, Step
from batch_poller.rows import JobRow
from batch_poller.store.errors import store_operation
from batch_poller.store.steps import due_work, needs, needs_any
from batch_poller.store.tables import bedrock_batch_jobs as _JOBS
from batch_poller.store.text import stored_text
from batch_poller.store.transactions import Transactions

HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Activity:
    pending: int
    completed_since: int
    failed_since: int
    cleanups_pending: int


@dataclass(frozen=True, slots=True)
class HourActivity:
    """One hour of the work done: the records of the jobs whose results were stored in it, and
    the jobs that ended at Bedrock in it (those that failed among them)."""

    start: datetime
    records_stored: int = 0
    jobs_finished: int = 0
    jobs_failed: int = 0


def _job_filter(status: JobStatus | None, search: str | None) -> list[ColumnElement[bool]]:
    """A status, and text found in the job's name or id (any case; % and _ are plain
    characters), or its whole ARN."""
    conditions: list[ColumnElement[bool]] = []
    if status is not None:
        conditions.append(_JOBS.c.status == status.value)
    if search:
        text = stored_text(search)
        conditions.append(
            or_(
                _JOBS.c.job_name.icontains(text, autoescape=True),
                _JOBS.c.job_id.icontains(text, autoescape=True),
                _JOBS.c.batch_job_arn == text,
            )
        )
    return conditions


class JobReads:
    tx: Transactions

    @store_operation("read a job")
    async def get_job(self, arn_or_job_id: str) -> JobRow | None:
        # Asked for as the store keeps text: a NUL (which PostgreSQL refuses) finds nothing.
        arn_or_job_id = stored_text(arn_or_job_id)
        key = _JOBS.c.batch_job_arn if arn_or_job_id.startswith("arn:") else _JOBS.c.job_id
        rows = await self._select_jobs(
            select(_JOBS).where(key == arn_or_job_id).order_by(_JOBS.c.batch_job_arn).limit(1)
        )
        return rows[0] if rows else None

    @store_operation("list jobs")
    async def list_jobs(
        self,
        status: JobStatus | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        search: str | None = None,
    ) -> list[JobRow]:
        """Newest first (by submission, else by when we started tracking); `search`: text in
        the job's name or id, or its ARN."""
        query = select(_JOBS).where(*_job_filter(status, search))
        newest = func.coalesce(_JOBS.c.submitted_at, _JOBS.c.created_at)
        query = query.order_by(newest.desc(), _JOBS.c.batch_job_arn).limit(limit).offset(offset)
        return await self._select_jobs(query)

    @store_operation("count jobs")
    async def count_jobs(
        self, status: JobStatus | None = None, *, search: str | None = None
    ) -> int:
        """How many jobs list_jobs has to page through with the same filter."""
        query = select(func.count()).select_from(_JOBS).where(*_job_filter(status, search))

        async def read(conn: AsyncConnection) -> int:
            return int((await conn.execute(query)).scalar_one())

        return await self.tx.read(read)

    @store_operation("select jobs by step")
    async def jobs_needing(self, step: Step, limit: int | None = None) -> list[JobRow]:
        """The jobs whose next step is `step` (domain.next_step), due or not, oldest first."""
        query = select(_JOBS).where(needs(step))
        query = query.order_by(_JOBS.c.submitted_at.asc().nulls_last(), _JOBS.c.batch_job_arn)
        return await self._select_jobs(query if limit is None else query.limit(limit))

    @store_operation("select due jobs")
    async def due_jobs(
        self,
        steps: Sequence[Step],
        now: datetime,
        check_interval_seconds: float,
        *,
        retry_failed_fetch: bool = False,
        limit: int | None = None,
    ) -> list[JobRow]:
        """Jobs that need one of `steps` and may take it now (domain.is_due), whoever holds
        them, oldest first."""
        due = due_work(
            steps,
            now,
            check_interval_seconds=check_interval_seconds,
            retry_failed_fetch=retry_failed_fetch,
        )
        query = select(_JOBS).where(due)
        query = query.order_by(_JOBS.c.submitted_at.asc().nulls_last(), _JOBS.c.batch_job_arn)
        return await self._select_jobs(query if limit is None else query.limit(limit))

    @store_operation("list jobs not cleaned")
    async def list_jobs_not_cleaned(self) -> list[JobRow]:
        """Every job whose S3 data has not been cleaned up: its folders are still in use."""
        query = (
            select(_JOBS)
            .where(_JOBS.c.cleanup_completed_at.is_(None))
            .order_by(_JOBS.c.batch_job_arn)
        )
        return await self._select_jobs(query)

    @store_operation("count activity")
    async def activity(self, since: datetime) -> Activity:
        """What the status page shows, in one query: pending work and what happened since."""
        c = _JOBS.c
        failed = c.status.in_([JobStatus.FAILED.value, JobStatus.RESULT_FETCH_FAILED.value])

        def count(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        query = select(
            count(needs_any((Step.CHECK, Step.FETCH))),
            count(c.results_fetched_at >= since),
            count(and_(failed, c.updated_at >= since)),
            count(needs(Step.CLEAN)),
        )

        async def read(conn: AsyncConnection) -> Activity:
            pending, completed, failed_since, cleanups = (await conn.execute(query)).one()
            return Activity(int(pending), int(completed), int(failed_since), int(cleanups))

        return await self.tx.read(read)

    @store_operation("count work by hour")
    async def activity_by_hour(self, start: datetime, hours: int) -> list[HourActivity]:
        """`hours` hours from `start`, one after the other: the records of the jobs whose
        results were stored in each, and the jobs that ended at Bedrock in each. Only the jobs
        table is read (a job's records are counted in the hour its fetch finished), and the
        rows are put in their hours here, the same way on every database."""
        end = start + hours * HOUR
        c = _JOBS.c
        stored = select(c.results_fetched_at, c.total_records).where(
            c.results_fetched_at >= start, c.results_fetched_at < end
        )
        finished = select(c.completed_at, c.status).where(
            c.completed_at >= start, c.completed_at < end
        )

        async def read(conn: AsyncConnection) -> list[HourActivity]:
            records = [0] * hours
            jobs = [0] * hours
            failed = [0] * hours
            for at, total in await conn.execute(stored):
                records[(at - start) // HOUR] += total or 0
            for at, status in await conn.execute(finished):
                jobs[(at - start) // HOUR] += 1
                failed[(at - start) // HOUR] += status == JobStatus.FAILED.value
            return [
                HourActivity(start + n * HOUR, records[n], jobs[n], failed[n]) for n in range(hours)
            ]

        return await self.tx.read(read)

    @store_operation("count statuses")
    async def status_counts(self) -> dict[JobStatus, int]:
        """Every status, zeros included, so gauges can be reset from it."""
        query = select(_JOBS.c.status, func.count()).group_by(_JOBS.c.status)

        async def read(conn: AsyncConnection) -> dict[JobStatus, int]:
            counts = dict.fromkeys(JobStatus, 0)
            for status, count in await conn.execute(query):
                counts[JobStatus(status)] = int(count)
            return counts

        return await self.tx.read(read)

    async def _select_jobs(self, query: Select[Any]) -> list[JobRow]:
        async def read(conn: AsyncConnection) -> list[JobRow]:
            result = await conn.execute(query)
            return [JobRow.from_mapping(row) for row in result.mappings()]

        return await self.tx.read(read)

"""JobStore: every read and write the daemon makes, over one AsyncEngine."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import CursorResult, Update, and_, case, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from batch_poller.domain import BedrockStatus, JobStatus, job_id_from_arn
from batch_poller.store.database_file import DatabaseFile, DatabaseFileGone
from batch_poller.store.engine import (
    DEFAULT_BUSY_TIMEOUT_SECONDS,
    DEFAULT_LOCK_TIMEOUT_SECONDS,
    dialect_insert,
    make_engine,
    sqlite_file,
)
from batch_poller.store.errors import StoreError, store_operation
from batch_poller.store.leases import LeaseStore
from batch_poller.store.migrations import upgrade
from batch_poller.store.tables import batch_records, bedrock_batch_jobs

_JOBS = bedrock_batch_jobs
_RECORDS = batch_records

_POLLABLE = (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)
_FETCHED = (JobStatus.COMPLETED, JobStatus.PARTIALLY_COMPLETED)
_HAS_OUTPUT = (BedrockStatus.COMPLETED, BedrockStatus.PARTIALLY_COMPLETED)


class UnknownJobError(LookupError):
    """An update named a job the store does not track."""


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

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> JobRow:
        values = dict(row)
        values["status"] = JobStatus(values["status"])
        if values["bedrock_status"] is not None:
            values["bedrock_status"] = BedrockStatus(values["bedrock_status"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class RecordRow:
    """One result record, as an ingester produces it."""

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


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(RecordRow))


@dataclass(frozen=True, slots=True)
class Activity:
    pending: int
    completed_since: int
    failed_since: int
    cleanups_pending: int


@dataclass(frozen=True, slots=True)
class WriteReport:
    written: int
    # Rows not written: their record id belongs to another line already.
    conflicts: list[RecordRow]


def _origin(row: RecordRow) -> tuple[str | None, int | None]:
    return row.source_file, row.line_number


# Text that may hold a NUL character; JSON text (model_output, model_input) is escaped already.
_TEXT_FIELDS = ("error_code", "error_message", "raw_text")


# PostgreSQL indexes at most ~2,700 bytes of a key; an id is kept whole up to this many.
MAX_RECORD_ID_BYTES = 1024


def stored_text(value: str) -> str:
    """Text as the store keeps it. PostgreSQL text cannot hold NUL characters (SQLite can):
    the same data in both."""
    return value.replace("\x00", "\ufffd")


def stored_record_id(record_id: str) -> str:
    """A record id as the store keeps it: NUL replaced, and an id too long for an index cut
    to its start and a digest of the whole, the same wherever it is met (output or input)."""
    text = stored_text(record_id)
    if len(text.encode()) <= MAX_RECORD_ID_BYTES:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{text[:200]}...sha256:{digest}"


def _scrubbed(row: RecordRow) -> RecordRow:
    """The row as the store keeps it. Ids are compared after this, so an id is compared with
    itself as written."""
    changes: dict[str, Any] = {
        name: stored_text(value)
        for name in _TEXT_FIELDS
        if (value := getattr(row, name)) is not None and "\x00" in value
    }
    if (record_id := stored_record_id(row.record_id)) != row.record_id:
        changes["record_id"] = record_id
    return dataclasses.replace(row, **changes) if changes else row


def _params(arn: str, now: datetime, row: RecordRow) -> dict[str, Any]:
    values = {f: getattr(row, f) for f in _RECORD_FIELDS}
    values["batch_job_arn"] = arn
    values["stored_at"] = now
    return values


class JobStore:
    """All persistence for the daemon. Every method is one short transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.leases = LeaseStore(engine)
        self._file = DatabaseFile.of(engine)

    @store_operation("check the database takes writes")
    async def check_writable(self) -> None:
        """A write that changes nothing: a pass with no job to write for still finds out that
        the database refuses writes (read-only, full), instead of passing as healthy."""
        async with self.engine.begin() as conn:
            await conn.execute(update(_JOBS).where(false()).values(updated_at=_JOBS.c.updated_at))

    async def reopen_connections(self) -> None:
        """Closes every pooled connection, so that the next ones open the database afresh.

        After a failed pass: a SQLite connection opened while its folder was read-only stays
        read-only, and while any connection to a file is open SQLite hands a closed one's file
        descriptor to the next connection of that file, so discarding connections one by one
        can keep a read-only descriptor alive for good. An in-memory database is its one
        connection, and is kept.
        """
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and sqlite_file(url) is None:
            return
        await self.engine.dispose()

    def check_database_file(self) -> None:
        """StoreError when the SQLite file was deleted or replaced under the store: its writes
        would be lost. Checked before anything is trusted to be stored."""
        if self._file is None:
            return
        try:
            self._file.check()
        except DatabaseFileGone as gone:
            raise StoreError(str(gone), gone) from None

    async def close(self) -> None:
        await self.engine.dispose()

    # -- tracking and lookup -------------------------------------------------

    @store_operation("track a job")
    async def track_job(self, job: NewJob, now: datetime) -> bool:
        """Start tracking a job; True if it was new. Never rewinds a known job."""
        values = {
            "batch_job_arn": job.arn,
            "job_id": job.job_id if job.job_id is not None else job_id_from_arn(job.arn),
            "job_name": job.job_name,
            "model_id": job.model_id,
            "status": job.status.value,
            "bedrock_status": None if job.bedrock_status is None else job.bedrock_status.value,
            "message": job.message,
            "input_s3_uri": job.input_s3_uri,
            "s3_folder": job.s3_folder,
            "output_s3_prefix": job.output_s3_prefix,
            "submitted_at": job.submitted_at,
            "completed_at": job.completed_at,
            "created_at": now,
            "updated_at": now,
        }
        async with self.engine.begin() as conn:
            stmt = dialect_insert(conn.dialect.name, _JOBS).values(values)
            result = await conn.execute(stmt.on_conflict_do_nothing())
            inserted = result.rowcount == 1
            if not inserted and job.s3_folder:
                # A re-track may tell us the folder we own; it may not steal one.
                await conn.execute(
                    update(_JOBS)
                    .where(_JOBS.c.batch_job_arn == job.arn)
                    .where(or_(_JOBS.c.s3_folder.is_(None), _JOBS.c.s3_folder == ""))
                    .values(s3_folder=job.s3_folder, updated_at=now)
                )
        return inserted

    @store_operation("read a job")
    async def get_job(self, arn_or_job_id: str) -> JobRow | None:
        key = _JOBS.c.batch_job_arn if arn_or_job_id.startswith("arn:") else _JOBS.c.job_id
        rows = await self._select_jobs(
            select(_JOBS).where(key == arn_or_job_id).order_by(_JOBS.c.batch_job_arn).limit(1)
        )
        return rows[0] if rows else None

    @store_operation("read jobs")
    async def get_jobs(self, arns: Sequence[str]) -> list[JobRow]:
        if not arns:
            return []
        query = select(_JOBS).where(_JOBS.c.batch_job_arn.in_(list(arns)))
        return await self._select_jobs(query.order_by(_JOBS.c.batch_job_arn))

    @store_operation("list jobs")
    async def list_jobs(
        self, status: JobStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[JobRow]:
        """Newest first (by submission, else by when we started tracking)."""
        query = select(_JOBS)
        if status is not None:
            query = query.where(_JOBS.c.status == status.value)
        newest = func.coalesce(_JOBS.c.submitted_at, _JOBS.c.created_at)
        query = query.order_by(newest.desc(), _JOBS.c.batch_job_arn).limit(limit).offset(offset)
        return await self._select_jobs(query)

    @store_operation("select jobs to check")
    async def get_pending_batch_jobs_for_polling(
        self, check_interval_seconds: float, now: datetime, limit: int | None = None
    ) -> list[JobRow]:
        """Unfinished jobs not checked within the interval, oldest submission first."""
        query = select(_JOBS).where(_JOBS.c.status.in_([s.value for s in _POLLABLE]))
        if check_interval_seconds > 0:
            cutoff = now - timedelta(seconds=check_interval_seconds)
            query = query.where(
                or_(_JOBS.c.last_checked_at.is_(None), _JOBS.c.last_checked_at <= cutoff)
            )
        query = query.order_by(_JOBS.c.submitted_at.asc().nulls_last(), _JOBS.c.batch_job_arn)
        if limit is not None:
            query = query.limit(limit)
        return await self._select_jobs(query)

    @store_operation("select jobs to fetch")
    async def get_jobs_needing_fetch(self) -> list[JobRow]:
        """Bedrock finished with output but we never finished storing it (crash resume).

        FAILED is excluded too: the daemon decided that job is over.
        """
        query = (
            select(_JOBS)
            .where(_JOBS.c.bedrock_status.in_([s.value for s in _HAS_OUTPUT]))
            .where(_JOBS.c.results_fetched_at.is_(None))
            .where(
                _JOBS.c.status.not_in([JobStatus.RESULT_FETCH_FAILED.value, JobStatus.FAILED.value])
            )
            .order_by(_JOBS.c.completed_at.asc().nulls_last(), _JOBS.c.batch_job_arn)
        )
        return await self._select_jobs(query)

    @store_operation("select failed fetches")
    async def get_fetch_failed_jobs(self, due_at: datetime | None = None) -> list[JobRow]:
        """RESULT_FETCH_FAILED jobs; with `due_at`, only those whose automatic retry is due."""
        query = select(_JOBS).where(_JOBS.c.status == JobStatus.RESULT_FETCH_FAILED.value)
        if due_at is not None:
            query = query.where(_JOBS.c.fetch_retry_at <= due_at)
        return await self._select_jobs(query.order_by(_JOBS.c.batch_job_arn))

    @store_operation("select jobs to clean")
    async def get_batch_jobs_pending_cleanup(self) -> list[JobRow]:
        query = (
            select(_JOBS)
            .where(_JOBS.c.results_fetched_at.is_not(None))
            .where(_JOBS.c.cleanup_completed_at.is_(None))
            .where(_JOBS.c.status.in_([s.value for s in _FETCHED]))
            .order_by(_JOBS.c.results_fetched_at, _JOBS.c.batch_job_arn)
        )
        return await self._select_jobs(query)

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
        fetched = c.status.in_([s.value for s in _FETCHED])
        failed = c.status.in_([JobStatus.FAILED.value, JobStatus.RESULT_FETCH_FAILED.value])

        def count(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        query = select(
            count(c.status.in_([s.value for s in _POLLABLE])),
            count(and_(fetched, c.results_fetched_at >= since)),
            count(and_(failed, c.updated_at >= since)),
            count(
                and_(fetched, c.results_fetched_at.is_not(None), c.cleanup_completed_at.is_(None))
            ),
        )
        async with self.engine.connect() as conn:
            pending, completed, failed_since, cleanups = (await conn.execute(query)).one()
        return Activity(int(pending), int(completed), int(failed_since), int(cleanups))

    @store_operation("count statuses")
    async def status_counts(self) -> dict[JobStatus, int]:
        """Every status, zeros included, so gauges can be reset from it."""
        counts = dict.fromkeys(JobStatus, 0)
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(_JOBS.c.status, func.count()).group_by(_JOBS.c.status)
            )
            for status, count in result:
                counts[JobStatus(status)] = int(count)
        return counts

    # -- state changes -------------------------------------------------------

    @store_operation("record a check")
    async def record_check(
        self,
        arn: str,
        *,
        bedrock_status: BedrockStatus | None,
        status: JobStatus,
        message: str | None,
        completed_at: datetime | None,
        now: datetime,
    ) -> None:
        values: dict[str, Any] = {
            "last_checked_at": now,
            "bedrock_status": None if bedrock_status is None else bedrock_status.value,
            "status": status.value,
            "message": message,
            "updated_at": now,
        }
        if completed_at is not None:
            values["completed_at"] = completed_at
        await self._update(arn, update(_JOBS).values(values))

    @store_operation("record checks")
    async def mark_checked(self, arns: Sequence[str], now: datetime) -> None:
        """Records one check of many jobs whose status did not change, in one statement."""
        if not arns:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                update(_JOBS)
                .where(_JOBS.c.batch_job_arn.in_(list(arns)))
                .values(last_checked_at=now, updated_at=now)
            )

    @store_operation("mark results stored")
    async def mark_results_fetched(
        self, arn: str, totals: RecordTotals, status: JobStatus, now: datetime
    ) -> None:
        if status not in _FETCHED:
            raise ValueError(
                f"results fetched means COMPLETED or PARTIALLY_COMPLETED, not {status}"
            )
        await self._update(
            arn,
            update(_JOBS).values(
                results_fetched_at=now,
                status=status.value,
                total_records=totals.total,
                success_records=totals.ok,
                error_records=totals.error,
                input_tokens=totals.input_tokens,
                output_tokens=totals.output_tokens,
                cost=totals.cost,
                last_error=None,
                fetch_retry_at=None,
                updated_at=now,
            ),
        )

    @store_operation("count a fetch attempt")
    async def increment_fetch_attempts(self, arn: str, error: str | None, now: datetime) -> int:
        """Count one more fetch attempt; ``error=None`` keeps the previous last_error."""
        values: dict[str, Any] = {
            "results_fetch_attempts": _JOBS.c.results_fetch_attempts + 1,
            "updated_at": now,
        }
        if error is not None:
            values["last_error"] = error
        # Once results are stored, a late failure of another fetch must not count against them.
        stmt = (
            update(_JOBS)
            .where(_JOBS.c.results_fetched_at.is_(None))
            .values(values)
            .returning(_JOBS.c.results_fetch_attempts)
        )
        return await self._update_returning_int(arn, stmt, missing_ok=True)

    @store_operation("mark a fetch failed")
    async def mark_fetch_failed(
        self, arn: str, error: str, now: datetime, retry_at: datetime | None = None
    ) -> None:
        """Only a job whose results are not stored can fail its fetch. `retry_at`: when the
        daemon tries it again by itself (None: only when asked)."""
        await self._update(
            arn,
            update(_JOBS)
            .where(_JOBS.c.results_fetched_at.is_(None))
            .values(
                status=JobStatus.RESULT_FETCH_FAILED.value,
                last_error=error,
                fetch_failures=_JOBS.c.fetch_failures + 1,
                fetch_retry_at=retry_at,
                updated_at=now,
            ),
            missing_ok=True,
        )

    @store_operation("mark a job failed")
    async def mark_failed(self, arn: str, message: str, now: datetime) -> None:
        await self._update(
            arn,
            update(_JOBS).values(status=JobStatus.FAILED.value, message=message, updated_at=now),
        )

    @store_operation("mark a check failed")
    async def mark_check_failed(self, arn: str, error: str, now: datetime) -> None:
        """Bedrock refused to describe the job for good (not found, access denied)."""
        await self._update(
            arn,
            update(_JOBS).values(
                status=JobStatus.FAILED.value, last_error=error, last_checked_at=now, updated_at=now
            ),
        )

    @store_operation("count bytes freed")
    async def add_bytes_freed(self, arn: str, freed: int, now: datetime) -> None:
        """Counts bytes as they are deleted, so an interrupted cleanup keeps its count."""
        await self._update(
            arn,
            update(_JOBS).values(
                bytes_freed=func.coalesce(_JOBS.c.bytes_freed, 0) + freed, updated_at=now
            ),
        )

    @store_operation("mark cleanup done")
    async def mark_cleanup_completed(self, arn: str, now: datetime) -> None:
        """Cleanup is done; the last_error it may have left is cleared."""
        await self._update(
            arn,
            update(_JOBS)
            .where(_JOBS.c.cleanup_completed_at.is_(None))
            .values(cleanup_completed_at=now, last_error=None, updated_at=now),
            missing_ok=True,
        )

    @store_operation("record a cleanup error")
    async def record_cleanup_error(self, arn: str, error: str, now: datetime) -> int:
        """Keep cleanup pending; returns the new cleanup_attempts."""
        stmt = (
            update(_JOBS)
            .values(cleanup_attempts=_JOBS.c.cleanup_attempts + 1, last_error=error, updated_at=now)
            .returning(_JOBS.c.cleanup_attempts)
        )
        return await self._update_returning_int(arn, stmt)

    # -- records -------------------------------------------------------------

    @store_operation("store records")
    async def write_records(
        self, arn: str, rows: Sequence[RecordRow], now: datetime
    ) -> WriteReport:
        """Upserts records in one transaction, as one multi-row statement per chunk.

        A record written again from the same file and line replaces the stored one, so a
        resumed ingest is harmless. A row whose record id is already taken by another line is
        not written: it comes back in `conflicts`, for the caller to store under another id.
        """
        unique: dict[str, RecordRow] = {}
        conflicts: list[RecordRow] = []
        for row in map(_scrubbed, rows):
            earlier = unique.get(row.record_id)
            if earlier is not None and _origin(earlier) != _origin(row):
                conflicts.append(row)
            else:
                unique[row.record_id] = row
        if not unique:
            return WriteReport(0, conflicts)
        params = [_params(arn, now, r) for r in unique.values()]
        async with self.engine.begin() as conn:
            stmt = dialect_insert(conn.dialect.name, _RECORDS)
            replaced = {c.name: stmt.excluded[c.name] for c in _RECORDS.c if not c.primary_key}
            same_line = and_(
                _RECORDS.c.source_file.is_not_distinct_from(stmt.excluded.source_file),
                _RECORDS.c.line_number.is_not_distinct_from(stmt.excluded.line_number),
            )
            upsert = stmt.on_conflict_do_update(
                index_elements=[_RECORDS.c.batch_job_arn, _RECORDS.c.record_id],
                set_=replaced,
                where=same_line,
            ).returning(_RECORDS.c.record_id)
            written = set((await conn.execute(upsert, params)).scalars())
        conflicts += [row for row in unique.values() if row.record_id not in written]
        return WriteReport(len(written), conflicts)

    @store_operation("count records")
    async def record_counts(self, arn: str) -> RecordTotals:
        """Totals from one GROUP BY (outcome, error_code) query, summed up here."""
        query = (
            select(
                _RECORDS.c.outcome,
                _RECORDS.c.error_code,
                func.count(),
                func.coalesce(func.sum(_RECORDS.c.input_tokens), 0),
                func.coalesce(func.sum(_RECORDS.c.output_tokens), 0),
                func.sum(_RECORDS.c.cost),
            )
            .where(_RECORDS.c.batch_job_arn == arn)
            .group_by(_RECORDS.c.outcome, _RECORDS.c.error_code)
        )
        total = ok = error = input_tokens = output_tokens = 0
        cost: Decimal | None = None
        by_error_code: dict[str, int] = {}
        async with self.engine.connect() as conn:
            for outcome, code, count, tokens_in, tokens_out, cost_sum in await conn.execute(query):
                total += count
                input_tokens += int(tokens_in)
                output_tokens += int(tokens_out)
                if cost_sum is not None:
                    cost = (cost or Decimal(0)) + cost_sum
                if outcome == "ok":
                    ok += count
                else:
                    error += count
                    if code is not None:
                        by_error_code[code] = by_error_code.get(code, 0) + count
        return RecordTotals(
            total=total,
            ok=ok,
            error=error,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
            by_error_code=by_error_code,
        )

    @store_operation("read unreadable lines")
    async def unreadable_lines(self, arn: str, codes: Sequence[str]) -> list[RecordRow]:
        """The job's records with these error codes (lines kept because they were not
        records): ids, origins and raw text."""
        query = select(
            _RECORDS.c.record_id,
            _RECORDS.c.error_code,
            _RECORDS.c.error_message,
            _RECORDS.c.source_file,
            _RECORDS.c.line_number,
            _RECORDS.c.raw_text,
        ).where(_RECORDS.c.batch_job_arn == arn, _RECORDS.c.error_code.in_(list(codes)))
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [RecordRow(outcome="error", **row) for row in result.mappings()]

    @store_operation("keep a line's input")
    async def keep_input_of_line(
        self, arn: str, record_id: str, model_input: str, error_message: str
    ) -> None:
        """Keeps a record's input with the stored line that stands for it (a line cut inside
        its id, told by what was left of it)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(_RECORDS)
                .where(_RECORDS.c.batch_job_arn == arn, _RECORDS.c.record_id == record_id)
                .values(model_input=model_input, error_message=stored_text(error_message))
            )

    @store_operation("read record ids")
    async def record_ids(self, arn: str) -> set[str]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(_RECORDS.c.record_id).where(_RECORDS.c.batch_job_arn == arn)
            )
            return set(result.scalars())

    # -- helpers -------------------------------------------------------------

    async def _select_jobs(self, query: Any) -> list[JobRow]:
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [JobRow.from_mapping(row) for row in result.mappings()]

    async def _update(self, arn: str, stmt: Update, *, missing_ok: bool = False) -> None:
        """missing_ok: a guarded update that matched nothing is not an error, if the job exists."""
        async with self.engine.begin() as conn:
            result: CursorResult[Any] = await conn.execute(stmt.where(_JOBS.c.batch_job_arn == arn))
            if result.rowcount == 0 and not (missing_ok and await self._exists(conn, arn)):
                raise UnknownJobError(arn)

    async def _update_returning_int(
        self, arn: str, stmt: Update, *, missing_ok: bool = False
    ) -> int:
        """The returned value; 0 when a guarded update matched nothing (missing_ok)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(stmt.where(_JOBS.c.batch_job_arn == arn))
            value = result.scalar_one_or_none()
            if value is None and missing_ok and await self._exists(conn, arn):
                return 0
        if value is None:
            raise UnknownJobError(arn)
        return int(value)

    @staticmethod
    async def _exists(conn: Any, arn: str) -> bool:
        found = await conn.execute(
            select(_JOBS.c.batch_job_arn).where(_JOBS.c.batch_job_arn == arn)
        )
        return found.first() is not None


async def open_store(
    url: str,
    *,
    schema: str | None = None,
    busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
) -> JobStore:
    """Connect, bring the schema up to date, and hand back a store."""
    engine = make_engine(
        url,
        schema=schema,
        busy_timeout_seconds=busy_timeout_seconds,
        lock_timeout_seconds=lock_timeout_seconds,
    )
    try:
        await upgrade(engine)
    except BaseException:
        await engine.dispose()
        raise
    return JobStore(engine)

"""JobStore: every read and write the daemon makes, over one AsyncEngine. The concerns live in
their own modules: reads (reads.py), status changes (transitions.py), records (records.py),
leases (leases.py) and the processes sharing the database (replicas.py)."""

from __future__ import annotations

import functools
import gc
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from batch_poller.domain import JobStatus, job_id_from_arn
from batch_poller.identity import Identity
from batch_poller.rows import NO_PROGRESS, JobRow, NewJob
from batch_poller.store.database_file import DatabaseFile, DatabaseFileGone, refuse_linked_file
from batch_poller.store.engine import SessionLimits, dialect_insert, make_engine, sqlite_file
from batch_poller.store.errors import StoreError, store_operation
from batch_poller.store.groups import GroupStore, settled
from batch_poller.store.guards import Tenancy
from batch_poller.store.leases import LeaseStore
from batch_poller.store.migrations import upgrade
from batch_poller.store.outbox import Outbox
from batch_poller.store.reads import JobReads
from batch_poller.store.records import RecordStore
from batch_poller.store.replicas import ReplicaStore
from batch_poller.store.submissions import SubmissionStore
from batch_poller.store.tables import bedrock_batch_jobs as _JOBS
from batch_poller.store.text import stored_text
from batch_poller.store.transactions import Transactions
from batch_poller.store.transitions import JobTransitions


class JobStore(JobReads, JobTransitions, RecordStore, GroupStore, SubmissionStore):
    """All persistence for one process. Every method is one short transaction (transactions.py:
    writes survive cancellation, transient failures are retried)."""

    def __init__(self, engine: AsyncEngine, identity: Identity | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.tx = Transactions(engine)
        self.tenancy = Tenancy(identity or Identity.of_this_process())
        self.leases = LeaseStore(self.tx, self.tenancy)
        self.replicas = ReplicaStore(self.tx, self.tenancy)
        self.outbox = Outbox(self.tx, self.tenancy)
        self._file = DatabaseFile.of(engine)

    @property
    def owner(self) -> str:
        """The name this process takes leases under."""
        return self.tenancy.owner

    def set_lease(self, lease: timedelta) -> None:
        """The length of the leases taken and extended from now on ([poller] lease_seconds)."""
        self.tenancy.lease = lease

    @store_operation("check the database takes writes")
    async def check_writable(self) -> None:
        """A write that changes nothing: a pass with no job to write for still finds out that
        the database refuses writes (read-only, full), instead of passing as healthy."""

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(update(_JOBS).where(false()).values(updated_at=_JOBS.c.updated_at))

        await self.tx.write(write)

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
        # A failed statement's error keeps its frames, and so its connection, alive in a
        # reference cycle until the cycle collector runs: collected now, such a connection is
        # closed before the pool opens new ones, instead of lending them its descriptor.
        gc.collect()
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

    # -- tracking ------------------------------------------------------------------------

    @store_operation("track a job")
    async def track_job(self, job: NewJob, now: datetime) -> bool:
        """Start tracking a job; True if it was new. Never rewinds a known job."""
        values: dict[str, object] = {
            "batch_job_arn": job.arn,
            "job_id": job.job_id if job.job_id is not None else job_id_from_arn(job.arn),
            "job_name": _text(job.job_name),
            "model_id": _text(job.model_id),
            "status": job.status.value,
            "bedrock_status": None if job.bedrock_status is None else job.bedrock_status.value,
            "message": _text(job.message),
            "input_s3_uri": job.input_s3_uri,
            "s3_folder": job.s3_folder,
            "output_s3_prefix": job.output_s3_prefix,
            "submitted_at": job.submitted_at,
            "completed_at": job.completed_at,
            "last_checked_at": job.checked_at,
            "created_at": now,
            "updated_at": now,
        }
        if job.progress != NO_PROGRESS:
            values["progress_processed"] = job.progress.processed
            values["progress_total"] = job.progress.total

        async def write(conn: AsyncConnection) -> bool:
            stmt = dialect_insert(conn.dialect.name, _JOBS).values(values)
            result = await conn.execute(stmt.on_conflict_do_nothing())
            inserted = result.rowcount == 1
            if inserted and job.status is JobStatus.FAILED:
                # Failed before it was tracked: it settles now.
                await settled(conn, self.outbox, job.arn, now)
            if not inserted and job.s3_folder:
                # A re-track may tell us the folder we own; it may not steal one.
                await conn.execute(
                    update(_JOBS)
                    .where(_JOBS.c.batch_job_arn == job.arn)
                    .where(or_(_JOBS.c.s3_folder.is_(None), _JOBS.c.s3_folder == ""))
                    .values(s3_folder=job.s3_folder, updated_at=now)
                )
            return inserted

        inserted = await self.tx.write(write)
        if inserted and job.status is JobStatus.FAILED:
            self.outbox.announce()
        return inserted

    async def jobs_named_by(self, ref: str) -> list[JobRow]:
        """The jobs a user's reference names, as the CLI and the API take it: the one with that
        ARN or id, else those with that name (several only when the database holds several
        accounts' jobs; the caller asks which)."""
        job = await self.get_job(ref)
        return [job] if job is not None else await self.jobs_named(ref)

    @store_operation("find jobs by name")
    async def jobs_named(self, name: str, limit: int = 10) -> list[JobRow]:
        """Jobs with exactly this name: Bedrock's names are unique per account and region, but
        the database may hold several accounts' jobs. Asked for as the store keeps text: a
        name holding NUL (which PostgreSQL refuses) finds nothing."""
        query = select(_JOBS).where(_JOBS.c.job_name == stored_text(name))
        return await self._select_jobs(query.order_by(_JOBS.c.batch_job_arn).limit(limit))

    @store_operation("find tracked jobs")
    async def tracked_arns(self, arns: Sequence[str]) -> set[str]:
        """Which of these job ARNs are tracked, asked a thousand at a time."""
        found: set[str] = set()
        for start in range(0, len(arns), 1000):
            chunk = [stored_text(arn) for arn in arns[start : start + 1000]]
            query = select(_JOBS.c.batch_job_arn).where(_JOBS.c.batch_job_arn.in_(chunk))
            found |= await self.tx.read(functools.partial(_scalars, query=query))
        return found

    @store_operation("list job names")
    async def job_names(self, limit: int = 10_000) -> list[str]:
        """The names of the newest jobs: what a mistyped name is compared with."""
        named = select(_JOBS.c.job_name).where(_JOBS.c.job_name.is_not(None))
        query = named.order_by(_JOBS.c.created_at.desc()).limit(limit)

        async def read(conn: AsyncConnection) -> list[str]:
            return [name for name in (await conn.execute(query)).scalars() if name]

        return await self.tx.read(read)


async def open_store(
    url: str,
    *,
    schema: str | None = None,
    identity: Identity | None = None,
    limits: SessionLimits | None = None,
) -> JobStore:
    """Connect, bring the schema up to date, and hand back a store."""
    refuse_linked_file(url)
    engine = make_engine(url, schema=schema, limits=limits)
    try:
        await upgrade(engine)
    except BaseException:
        await engine.dispose()
        raise
    return JobStore(engine, identity)


def _text(value: str | None) -> str | None:
    """Bedrock's text as the store keeps it (no NUL, which PostgreSQL refuses)."""
    return None if value is None else stored_text(value)


async def _scalars(conn: AsyncConnection, query: Select[Any]) -> set[Any]:
    return set((await conn.execute(query)).scalars())

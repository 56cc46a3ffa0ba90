"""Leases on jobs: a row names the process working on it and until when. Several daemons can
share one PostgreSQL database: each claims only as many due jobs as it has room for, in one
statement that skips rows another is claiming, works only on the jobs it holds, extends its
leases while it works, and takes over a lease that has run out (its holder died or stalled)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from batch_poller.domain import Step
from batch_poller.rows import JobRow
from batch_poller.store.errors import store_operation
from batch_poller.store.guards import Tenancy, free_or_held_by, held_by
from batch_poller.store.steps import due_work, urgency
from batch_poller.store.tables import bedrock_batch_jobs as _JOBS
from batch_poller.store.transactions import Transactions

_C = _JOBS.c
ALL_STEPS = tuple(Step)


class LeaseStore:
    def __init__(self, tx: Transactions, tenancy: Tenancy) -> None:
        self.tx = tx
        self.tenancy = tenancy

    @store_operation("claim jobs")
    async def claim(
        self,
        limit: int,
        now: datetime,
        *,
        check_interval_seconds: float,
        retry_failed_fetch: bool = False,
        steps: Sequence[Step] = ALL_STEPS,
        exclude: Collection[str] = (),
        only: str | None = None,
    ) -> list[JobRow]:
        """Up to `limit` due jobs that no other process holds a live lease on, now leased to
        this process: the most urgent are picked; they come back as they are after the claim,
        sorted by ARN.

        One statement: the due rows are picked FOR UPDATE SKIP LOCKED (on PostgreSQL) and
        stamped in the same UPDATE, so two processes claiming at once get different jobs and
        neither waits for the other. A job this process still holds is claimed again (its
        release failed, say, while the database refused writes): `exclude` must name the jobs
        it is working on, and those a pass has worked on already; `only`: that one job.
        """
        if limit <= 0:
            return []
        pick = (
            select(_C.batch_job_arn)
            .where(
                due_work(
                    steps,
                    now,
                    check_interval_seconds=check_interval_seconds,
                    retry_failed_fetch=retry_failed_fetch,
                )
            )
            .where(free_or_held_by(self.tenancy.owner, now))
            .order_by(urgency(), _C.submitted_at.asc().nulls_last(), _C.batch_job_arn)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if exclude:
            pick = pick.where(_C.batch_job_arn.not_in(list(exclude)))
        if only is not None:
            pick = pick.where(_C.batch_job_arn == only)
        picked = pick.cte("picked")
        stmt = (
            update(_JOBS)
            .where(_C.batch_job_arn.in_(select(picked.c.batch_job_arn)))
            .values(claimed_by=self.tenancy.owner, claimed_until=self.tenancy.until(now))
            .returning(*_JOBS.c)
        )

        async def write(conn: AsyncConnection) -> list[JobRow]:
            rows = [JobRow.from_mapping(row) for row in (await conn.execute(stmt)).mappings()]
            return sorted(rows, key=lambda job: job.batch_job_arn)

        return await self.tx.write(write)

    @store_operation("extend leases")
    async def extend(self, arns: Collection[str], now: datetime) -> set[str]:
        """Extends this process's live leases; returns those it still held."""
        if not arns:
            return set()
        stmt = (
            update(_JOBS)
            .where(_C.batch_job_arn.in_(list(arns)), held_by(self.tenancy.owner, now))
            .values(claimed_until=self.tenancy.until(now))
            .returning(_C.batch_job_arn)
        )

        async def write(conn: AsyncConnection) -> set[str]:
            return set((await conn.execute(stmt)).scalars())

        return await self.tx.write(write)

    @store_operation("release leases")
    async def release(self, arns: Collection[str] | None = None) -> None:
        """Gives up this process's leases on `arns` (all of them when None)."""
        if arns is not None and not arns:
            return
        stmt = update(_JOBS).where(_C.claimed_by == self.tenancy.owner)
        if arns is not None:
            stmt = stmt.where(_C.batch_job_arn.in_(list(arns)))

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(stmt.values(claimed_by=None, claimed_until=None))

        await self.tx.write(write)

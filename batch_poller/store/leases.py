"""Leases on jobs: a row names the daemon working on it and until when. Several daemons can
share one PostgreSQL database: each works only on the jobs it holds a lease on, extends the
leases while it works, and takes over a lease that has run out (its holder died or stalled)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from batch_poller.store.errors import store_operation
from batch_poller.store.tables import bedrock_batch_jobs as _JOBS


class LeaseStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @store_operation("claim jobs")
    async def claim(
        self, arns: Collection[str], owner: str, until: datetime, now: datetime
    ) -> set[str]:
        """The jobs among `arns` now leased to `owner`: free, run out, or already its own."""
        if not arns:
            return set()
        stmt = (
            update(_JOBS)
            .where(_JOBS.c.batch_job_arn.in_(list(arns)))
            .where(
                or_(
                    _JOBS.c.claimed_until.is_(None),
                    _JOBS.c.claimed_until <= now,
                    _JOBS.c.claimed_by == owner,
                )
            )
            .values(claimed_by=owner, claimed_until=until)
            .returning(_JOBS.c.batch_job_arn)
        )
        async with self.engine.begin() as conn:
            return set((await conn.execute(stmt)).scalars())

    @store_operation("extend leases")
    async def extend(self, arns: Collection[str], owner: str, until: datetime) -> set[str]:
        """Extends the owner's leases; returns those it still held."""
        if not arns:
            return set()
        stmt = (
            update(_JOBS)
            .where(_JOBS.c.batch_job_arn.in_(list(arns)))
            .where(_JOBS.c.claimed_by == owner)
            .values(claimed_until=until)
            .returning(_JOBS.c.batch_job_arn)
        )
        async with self.engine.begin() as conn:
            return set((await conn.execute(stmt)).scalars())

    @store_operation("release leases")
    async def release(self, arns: Collection[str], owner: str) -> None:
        if not arns:
            return
        stmt = (
            update(_JOBS)
            .where(_JOBS.c.batch_job_arn.in_(list(arns)))
            .where(_JOBS.c.claimed_by == owner)
            .values(claimed_by=None, claimed_until=None)
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

"""The processes that share the database: each writes a heartbeat row while it runs, so the
status can list the live replicas and the jobs each holds, and a process restarted on the same
machine frees at once the leases of the one it replaced instead of waiting for them to run out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from batch_poller.identity import process_alive
from batch_poller.store.engine import dialect_insert
from batch_poller.store.errors import store_operation
from batch_poller.store.guards import Tenancy
from batch_poller.store.tables import bedrock_batch_jobs as _JOBS
from batch_poller.store.tables import hook_deliveries as _DELIVERIES
from batch_poller.store.tables import replicas as _REPLICAS
from batch_poller.store.transactions import Transactions

# A row not seen for this long is forgotten; its leases have run out long before.
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Replica:
    owner: str
    host: str
    pid: int
    role: str
    started_at: datetime
    seen_at: datetime
    last_pass_at: datetime | None
    jobs: tuple[str, ...]  # the jobs it holds a live lease on

    def as_dict(self) -> dict[str, object]:
        return {
            "owner": self.owner,
            "host": self.host,
            "pid": self.pid,
            "role": self.role,
            "started_at": self.started_at.isoformat(),
            "seen_at": self.seen_at.isoformat(),
            "last_pass_at": None if self.last_pass_at is None else self.last_pass_at.isoformat(),
            "jobs": list(self.jobs),
        }


class ReplicaStore:
    def __init__(self, tx: Transactions, tenancy: Tenancy) -> None:
        self.tx = tx
        self.tenancy = tenancy

    @store_operation("register this process")
    async def join(self, role: str, now: datetime) -> None:
        """Writes this process's row."""
        me = self.tenancy.identity

        async def write(conn: AsyncConnection) -> None:
            stmt = dialect_insert(conn.dialect.name, _REPLICAS).values(
                owner=me.owner,
                host=me.host,
                pid=me.pid,
                local_key=me.local_key,
                role=role,
                started_at=now,
                seen_at=now,
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[_REPLICAS.c.owner], set_={"seen_at": now, "role": role}
                )
            )

        await self.tx.write(write)

    @store_operation("free dead processes' leases")
    async def free_dead_neighbours(self, now: datetime) -> list[str]:
        """Frees the leases of the processes on this machine (same boot, same pid namespace)
        whose pid is gone, and forgets them; returns their owners."""

        async def write(conn: AsyncConnection) -> list[str]:
            return await _free_dead_neighbours(conn, self.tenancy, process_alive, now)

        return await self.tx.write(write)

    @store_operation("write a heartbeat")
    async def beat(self, now: datetime, *, passed: bool = False) -> None:
        values: dict[str, datetime] = {"seen_at": now}
        if passed:
            values["last_pass_at"] = now
        stmt = update(_REPLICAS).where(_REPLICAS.c.owner == self.tenancy.owner).values(values)

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(stmt)

        await self.tx.write(write)

    @store_operation("unregister this process")
    async def leave(self) -> None:
        """Gives up every lease this process holds and removes its row."""
        owner = self.tenancy.owner

        async def write(conn: AsyncConnection) -> None:
            for table in (_JOBS, _DELIVERIES):
                await conn.execute(
                    update(table)
                    .where(table.c.claimed_by == owner)
                    .values(claimed_by=None, claimed_until=None)
                )
            await conn.execute(delete(_REPLICAS).where(_REPLICAS.c.owner == owner))

        await self.tx.write(write)

    @store_operation("list replicas")
    async def live(self, now: datetime, within: timedelta) -> list[Replica]:
        """The processes seen within `within`, each with the jobs it holds now."""
        replicas = select(_REPLICAS).where(_REPLICAS.c.seen_at > now - within)
        held = select(_JOBS.c.claimed_by, _JOBS.c.batch_job_arn).where(
            _JOBS.c.claimed_by.is_not(None), _JOBS.c.claimed_until > now
        )

        async def read(conn: AsyncConnection) -> list[Replica]:
            jobs: dict[str, list[str]] = {}
            for owner, arn in await conn.execute(held):
                jobs.setdefault(owner, []).append(arn)
            rows = (await conn.execute(replicas.order_by(_REPLICAS.c.started_at))).mappings()
            return [
                Replica(
                    owner=row["owner"],
                    host=row["host"],
                    pid=row["pid"],
                    role=row["role"],
                    started_at=row["started_at"],
                    seen_at=row["seen_at"],
                    last_pass_at=row["last_pass_at"],
                    jobs=tuple(sorted(jobs.get(row["owner"], ()))),
                )
                for row in rows
            ]

        return await self.tx.read(read)


async def _free_dead_neighbours(
    conn: AsyncConnection, tenancy: Tenancy, alive: Callable[[int], bool], now: datetime
) -> list[str]:
    me = tenancy.identity
    rows = await conn.execute(
        select(_REPLICAS.c.owner, _REPLICAS.c.pid).where(
            _REPLICAS.c.local_key == me.local_key, _REPLICAS.c.owner != me.owner
        )
    )
    # A pid that is now ours belonged to a process that is gone (a restart can reuse it).
    dead = [owner for owner, pid in rows if pid == me.pid or not alive(pid)]
    if dead:
        for table in (_JOBS, _DELIVERIES):
            await conn.execute(
                update(table)
                .where(table.c.claimed_by.in_(dead))
                .values(claimed_by=None, claimed_until=None)
            )
        await conn.execute(delete(_REPLICAS).where(_REPLICAS.c.owner.in_(dead)))
    await conn.execute(delete(_REPLICAS).where(_REPLICAS.c.seen_at < now - FORGET_AFTER))
    return dead

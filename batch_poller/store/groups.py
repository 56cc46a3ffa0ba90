"""Groups: the application's units of work (the seed plan's analysis jobs), each made of one or
more batch jobs. A group takes jobs until it is sealed; once sealed and every job of it has
settled, it is compiled, in the transaction that settled its last job (or that sealed it):
its status and totals are written, its jobs' folders may go, and a group.completed event is
in the outbox.

Two processes settling a group's last two jobs at once cannot both miss the compile: each
settles its job first and then locks the group's row (PostgreSQL) before counting what is left,
so the second to get the lock sees the first's job settled. SQLite has one writer at a time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from batch_poller.domain import (
    GROUP_NAME_PATTERN,
    SETTLED,
    GroupStatus,
    JobStatus,
    check_group_name,
)
from batch_poller.hooks.documents import group_part, job_part
from batch_poller.rows import GroupRow, JobRow
from batch_poller.store.engine import dialect_insert
from batch_poller.store.errors import store_operation
from batch_poller.store.outbox import EventType, NewEvent, Outbox
from batch_poller.store.tables import batch_records as _RECORDS
from batch_poller.store.tables import bedrock_batch_jobs as _JOBS
from batch_poller.store.tables import job_groups as _GROUPS
from batch_poller.store.transactions import Transactions

_J = _JOBS.c
_G = _GROUPS.c
_R = _RECORDS.c


class GroupError(Exception):
    """A group request that cannot be done; `kind`: unknown, sealed, conflict, empty, invalid."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class GroupStore:
    tx: Transactions
    outbox: Outbox

    @store_operation("put jobs in a group")
    async def group_jobs(
        self, arns: Sequence[str], name: str, now: datetime, *, seal: bool = False
    ) -> GroupRow:
        """Puts tracked jobs in the group (made if new), all or none, and seals it if asked.
        Refused for a sealed group, or a job already in another group."""
        name = _checked_name(name)

        async def write(conn: AsyncConnection) -> GroupRow:
            new = {"name": name, "status": GroupStatus.OPEN.value, "jobs": 0}
            await conn.execute(
                dialect_insert(conn.dialect.name, _GROUPS)
                .values(**new, created_at=now, updated_at=now)
                .on_conflict_do_nothing()
            )
            group = await _locked_group(conn, name)
            assert group is not None
            newcomers = await _newcomers(conn, arns, name)
            if newcomers and group.status is not GroupStatus.OPEN:
                raise GroupError(_takes_no_more(group), "sealed")
            if newcomers:
                await _add_members(conn, newcomers, name, now)
            return await self._read_back(conn, group, now, seal=seal)

        return await self._written(write)

    @store_operation("seal a group")
    async def seal_group(self, name: str, now: datetime) -> GroupRow:
        """The group takes no more jobs; compiled at once if they have all settled. Sealing a
        sealed or compiled group changes nothing."""

        if not GROUP_NAME_PATTERN.match(name):
            raise GroupError(f"no group {name!r}", "unknown")

        async def write(conn: AsyncConnection) -> GroupRow:
            group = await _locked_group(conn, name)
            if group is None:
                raise GroupError(f"no group {name!r}", "unknown")
            return await self._read_back(conn, group, now, seal=True)

        return await self._written(write)

    @store_operation("put a resubmission in its group")
    async def join_as_retry(self, name: str, arn: str, retries_of: str, now: datetime) -> GroupRow:
        """Puts a tracked job that runs again records of the group's job `retries_of` in the
        group, sealed or compiled as it may be: a compiled group is reopened, and compiled
        again once the job settles, each record counted by its latest version."""

        async def write(conn: AsyncConnection) -> GroupRow:
            group = await _locked_group(conn, name)
            if group is None:
                raise GroupError(f"no group {name!r}", "unknown")
            if await _newcomers(conn, [arn], name):
                await _add_members(conn, [arn], name, now)
            await conn.execute(
                update(_JOBS).where(_J.batch_job_arn == arn).values(retries_of=retries_of)
            )
            await reopen(conn, name, now)
            found = await _locked_group(conn, name)
            assert found is not None
            return found

        return await self._written(write)

    async def _read_back(
        self, conn: AsyncConnection, group: GroupRow, now: datetime, *, seal: bool
    ) -> GroupRow:
        """The group as the transaction leaves it; `seal` seals it first if it is open, and
        compiles it if its jobs have all settled."""
        if seal and group.status is GroupStatus.OPEN:
            await _seal(conn, group.name, now)
            await compile_if_ready(conn, self.outbox, group.name, now)
        found = await _locked_group(conn, group.name)
        assert found is not None
        return found

    async def _written(self, write: Callable[[AsyncConnection], Awaitable[GroupRow]]) -> GroupRow:
        """The group after the write's transaction; a compile in it wakes the deliveries."""
        group = await self.tx.write(write)
        if group.status.is_compiled:
            self.outbox.announce()
        return group

    @store_operation("compile groups")
    async def compile_ready_groups(self, now: datetime) -> list[str]:
        """Compiles every sealed group whose jobs have all settled: a sweep each pass, behind
        the compile that the last settle makes, for a group no settle reached (a job settled
        by an older version, say)."""
        unsettled = (
            select(func.count())
            .where(_J.group_name == _G.name, _J.status.not_in(_settled()))
            .scalar_subquery()
        )
        query = select(_G.name).where(_G.status == GroupStatus.SEALED.value, unsettled == 0)

        async def write(conn: AsyncConnection) -> list[str]:
            compiled = []
            for name in list((await conn.execute(query)).scalars()):
                if await compile_if_ready(conn, self.outbox, name, now) is not None:
                    compiled.append(name)
            return compiled

        compiled = await self.tx.write(write)
        if compiled:
            self.outbox.announce()
        return compiled

    @store_operation("read a group")
    async def get_group(self, name: str) -> GroupRow | None:
        if not GROUP_NAME_PATTERN.match(name):
            return None  # no group can have that name (a NUL, say, which no database takes)

        async def read(conn: AsyncConnection) -> GroupRow | None:
            row = (await conn.execute(select(_GROUPS).where(_G.name == name))).mappings().first()
            return None if row is None else GroupRow.from_mapping(row)

        return await self.tx.read(read)

    @store_operation("list groups")
    async def list_groups(
        self, status: GroupStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[GroupRow]:
        """Newest first."""
        query = select(_GROUPS)
        if status is not None:
            query = query.where(_G.status == status.value)
        query = query.order_by(_G.created_at.desc(), _G.name).limit(limit).offset(offset)

        async def read(conn: AsyncConnection) -> list[GroupRow]:
            return [GroupRow.from_mapping(r) for r in (await conn.execute(query)).mappings()]

        return await self.tx.read(read)

    @store_operation("list a group's jobs")
    async def group_members(self, name: str) -> list[JobRow]:
        query = select(_JOBS).where(_J.group_name == name).order_by(_J.batch_job_arn)

        async def read(conn: AsyncConnection) -> list[JobRow]:
            return [JobRow.from_mapping(r) for r in (await conn.execute(query)).mappings()]

        return await self.tx.read(read)


async def settled(conn: AsyncConnection, outbox: Outbox, arn: str, now: datetime) -> None:
    """In the transaction that settled a job: its event, and its group's compile if it was the
    group's last job."""
    row = (await conn.execute(select(_JOBS).where(_J.batch_job_arn == arn))).mappings().one()
    await settled_jobs(conn, outbox, [JobRow.from_mapping(row)], now)


async def settled_jobs(
    conn: AsyncConnection, outbox: Outbox, jobs: Sequence[JobRow], now: datetime
) -> list[str]:
    """In the transaction that settled the jobs (`jobs` as it left them): their events, in one
    statement, and the compile of each group whose last job one of them was; returns the
    groups compiled (their jobs' rows changed: group_compiled_at). The groups are locked in
    the order of their names, so two processes settling jobs of the same groups cannot each
    hold one lock the other waits for."""
    await outbox.emit_many(
        conn,
        [
            NewEvent(
                EventType.JOB_FAILED if job.status is JobStatus.FAILED else EventType.JOB_SETTLED,
                job_part(job),
                batch_job_arn=job.batch_job_arn,
                group_name=job.group_name,
            )
            for job in jobs
        ],
        now,
    )
    compiled = []
    for name in sorted({job.group_name for job in jobs if job.group_name is not None}):
        if await compile_if_ready(conn, outbox, name, now) is not None:
            compiled.append(name)
    return compiled


async def compile_if_ready(
    conn: AsyncConnection, outbox: Outbox, name: str, now: datetime
) -> GroupRow | None:
    """Compiles a sealed group whose jobs have all settled, once; None when it is not ready
    (or compiled already)."""
    group = await _locked_group(conn, name)
    if group is None or group.status is not GroupStatus.SEALED:
        return None
    totals = (
        await conn.execute(
            select(
                func.count(),
                _count(_J.status.not_in(_settled())),
                _count(_J.status == JobStatus.FAILED.value),
                _count(
                    (_J.status == JobStatus.PARTIALLY_COMPLETED.value)
                    | (func.coalesce(_J.error_records, 0) > 0)
                ),
                func.coalesce(func.sum(_J.total_records), 0),
                func.coalesce(func.sum(_J.success_records), 0),
                func.coalesce(func.sum(_J.error_records), 0),
                func.coalesce(func.sum(_J.input_tokens), 0),
                func.coalesce(func.sum(_J.output_tokens), 0),
                func.sum(_J.cost),
                func.min(_J.submitted_at),
                func.max(_J.completed_at),
            ).where(_J.group_name == name)
        )
    ).one()
    jobs, unsettled, failed, partial, total, ok, error, tokens_in, tokens_out = totals[:9]
    cost, first_submitted, last_completed = totals[9:]
    if unsettled or not jobs:
        return None
    if await _holds_retries(conn, name):
        # A record run again counts once, as its latest version; tokens and cost count every
        # run, as every run was billed.
        total, ok = (await conn.execute(_latest_versions(name))).one()
        error = total - ok
        partial = error
    if failed:
        status = GroupStatus.FAILED
    elif partial:
        status = GroupStatus.PARTIALLY_COMPLETED
    else:
        status = GroupStatus.COMPLETED
    await conn.execute(
        update(_GROUPS)
        .where(_G.name == name)
        .values(
            status=status.value,
            compiled_at=now,
            jobs=int(jobs),
            failed_jobs=int(failed),
            total_records=int(total),
            success_records=int(ok),
            error_records=int(error),
            input_tokens=int(tokens_in),
            output_tokens=int(tokens_out),
            cost=None if cost is None else Decimal(cost),
            first_submitted_at=first_submitted,
            last_completed_at=last_completed,
            updated_at=now,
        )
    )
    await conn.execute(update(_JOBS).where(_J.group_name == name).values(group_compiled_at=now))
    compiled = await _locked_group(conn, name)
    assert compiled is not None
    await outbox.emit(conn, EventType.GROUP_COMPLETED, group_part(compiled), now, group_name=name)
    return compiled


async def _holds_retries(conn: AsyncConnection, name: str) -> bool:
    query = select(_J.batch_job_arn).where(_J.group_name == name, _J.retries_of.is_not(None))
    return (await conn.execute(query.limit(1))).first() is not None


def latest_versions(jobs: ColumnElement[bool], *carried: ColumnElement[Any]) -> Subquery:
    """The records of the jobs matching `jobs` (their record id, outcome and the `carried`
    columns: only those, as the window sorts whatever it carries), each numbered by how recent
    its version is among those with its id (1: the latest): a resubmission's record replaces
    the one it ran again. Jobs are ordered by when they were tracked, and a resubmission after
    an original tracked at the same instant (a clock that does not move, in tests)."""
    return (
        select(
            _R.record_id,
            _R.outcome,
            *carried,
            func.row_number()
            .over(
                partition_by=_R.record_id,
                order_by=(
                    _J.created_at.desc(),
                    case((_J.retries_of.is_(None), 0), else_=1).desc(),
                    _J.batch_job_arn.desc(),
                ),
            )
            .label("version"),
        )
        .join_from(_RECORDS, _JOBS, _R.batch_job_arn == _J.batch_job_arn)
        .where(jobs)
        .subquery()
    )


def _latest_versions(name: str) -> Select[int, int]:
    ranked = latest_versions(_J.group_name == name)
    return select(func.count(), _count(ranked.c.outcome == "ok")).where(ranked.c.version == 1)


async def _locked_group(conn: AsyncConnection, name: str) -> GroupRow | None:
    """The group's row, locked until the transaction ends (PostgreSQL)."""
    query = select(_GROUPS).where(_G.name == name).with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else GroupRow.from_mapping(row)


async def _newcomers(conn: AsyncConnection, arns: Sequence[str], name: str) -> list[str]:
    """The jobs not in the group yet, their rows locked (PostgreSQL) until the transaction
    ends, so that two requests putting one job in two groups cannot both succeed. Refused: a
    job not tracked, a job in another group."""
    found = (
        await conn.execute(
            select(_J.batch_job_arn, _J.group_name)
            .where(_J.batch_job_arn.in_(list(arns)))
            .with_for_update()
        )
    ).all()
    known = {arn: group for arn, group in found}
    for arn in arns:
        if arn not in known:
            raise GroupError(f"no tracked job {arn}", "unknown")
        if known[arn] not in (None, name):
            raise GroupError(
                f"{arn} is already in group {known[arn]!r}: a job belongs to one group",
                "conflict",
            )
    return sorted({arn for arn in arns if known[arn] is None})


def _takes_no_more(group: GroupRow) -> str:
    state = "sealed" if group.status is GroupStatus.SEALED else "compiled"
    return f"group {group.name!r} is {state}: it takes no more jobs"


async def _add_members(
    conn: AsyncConnection, arns: Sequence[str], name: str, now: datetime
) -> None:
    await conn.execute(
        update(_JOBS)
        .where(_J.batch_job_arn.in_(list(arns)), _J.group_name.is_(None))
        .values(group_name=name, updated_at=now)
    )
    members = select(func.count()).where(_J.group_name == name).scalar_subquery()
    await conn.execute(update(_GROUPS).where(_G.name == name).values(jobs=members, updated_at=now))


async def reopen(conn: AsyncConnection, name: str, now: datetime) -> None:
    """A compiled group one of whose jobs is back on its path (tracked again after it failed
    while Bedrock did not fail it): sealed again, compiled again once that job settles."""
    cleared = {
        column: None
        for column in (
            "compiled_at",
            "failed_jobs",
            "total_records",
            "success_records",
            "error_records",
            "input_tokens",
            "output_tokens",
            "cost",
            "first_submitted_at",
            "last_completed_at",
        )
    }
    compiled = [status.value for status in GroupStatus if status.is_compiled]
    reopened = await conn.execute(
        update(_GROUPS)
        .where(_G.name == name, _G.status.in_(compiled))
        .values(status=GroupStatus.SEALED.value, updated_at=now, **cleared)
        .returning(_G.name)
    )
    if reopened.first() is not None:
        await conn.execute(
            update(_JOBS).where(_J.group_name == name).values(group_compiled_at=None)
        )


async def _seal(conn: AsyncConnection, name: str, now: datetime) -> None:
    members = (await conn.execute(select(func.count()).where(_J.group_name == name))).scalar_one()
    if not members:
        raise GroupError(f"group {name!r} has no jobs: a sealed group must have some", "empty")
    await conn.execute(
        update(_GROUPS)
        .where(_G.name == name)
        .values(status=GroupStatus.SEALED.value, sealed_at=now, updated_at=now)
    )


def _checked_name(name: str) -> str:
    try:
        return check_group_name(name)
    except ValueError as error:
        raise GroupError(str(error), "invalid") from None


def _settled() -> list[str]:
    return sorted(status.value for status in SETTLED)


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

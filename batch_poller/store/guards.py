"""Fencing: a write for a job names the step the job must still be at and the lease the writer
must still hold. A write that matches no row is refused with the reason, never made silently."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ClauseElement

from batch_poller.domain import JobStatus, Step, next_step
from batch_poller.identity import Identity
from batch_poller.rows import JobRow
from batch_poller.store.steps import needs
from batch_poller.store.tables import bedrock_batch_jobs as _JOBS
from batch_poller.store.text import stored_text

_C = _JOBS.c

DEFAULT_LEASE = timedelta(minutes=5)


class UnknownJobError(LookupError):
    """An update named a job the store does not track."""


class LeaseLost(Exception):
    """This process no longer holds the job's lease: another took the job over, or the lease ran
    out. It must write nothing more for the job and delete nothing."""

    def __init__(self, arn: str, owner: str, holder: str | None, until: datetime | None) -> None:
        when = "" if until is None else f" until {until.isoformat()}"
        if holder == owner:
            reason = f"its lease ran out{when.replace(' until', ' at')}"
        else:
            reason = f"held by {'nobody' if holder is None else holder}{when}"
        super().__init__(f"{arn}: lease lost by {owner}; {reason}")
        self.arn = arn
        self.holder = holder


class StaleTransition(Exception):
    """The job is no longer at the step the write was made for: something else moved it on."""

    def __init__(self, arn: str, step: Step, status: JobStatus, now_needs: Step | None) -> None:
        needed = "nothing" if now_needs is None else now_needs.value
        super().__init__(
            f"{arn}: a {step.value} step's write refused: the job is {status.value} "
            f"and needs {needed}"
        )
        self.arn = arn


@dataclass
class Tenancy:
    """This process's name in leases, and how long a lease it takes. The lease length follows
    the configuration ([poller] lease_seconds), so it can change on reload."""

    identity: Identity = field(default_factory=Identity.of_this_process)
    lease: timedelta = DEFAULT_LEASE

    @property
    def owner(self) -> str:
        return self.identity.owner

    def until(self, now: datetime) -> datetime:
        return now + self.lease


def held_by(owner: str, now: datetime) -> ColumnElement[bool]:
    """The owner holds a lease that has not run out."""
    return and_(_JOBS.c.claimed_by == owner, _JOBS.c.claimed_until > now)


def free_or_held_by(owner: str, now: datetime) -> ColumnElement[bool]:
    """Nobody else holds a live lease on the job."""
    return or_(
        _JOBS.c.claimed_until.is_(None),
        _JOBS.c.claimed_until <= now,
        _JOBS.c.claimed_by == owner,
    )


async def refusal(
    conn: AsyncConnection, arn: str, step: Step, owner: str, now: datetime
) -> Exception:
    """Why a guarded write of `arn` matched no row, read in the write's own transaction."""
    return (await refusals(conn, [arn], step, owner, now))[arn]


async def refusals(
    conn: AsyncConnection, arns: Collection[str], step: Step, owner: str, now: datetime
) -> dict[str, Exception]:
    """Why guarded writes of `arns` matched no row, read in one query in the writes' own
    transaction."""
    if not arns:
        return {}
    query = select(_JOBS).where(_C.batch_job_arn.in_(list(arns)))
    found = {
        job.batch_job_arn: job
        for job in map(JobRow.from_mapping, (await conn.execute(query)).mappings())
    }
    return {arn: _refusal_of(arn, found.get(arn), step, owner, now) for arn in arns}


def _refusal_of(arn: str, job: JobRow | None, step: Step, owner: str, now: datetime) -> Exception:
    if job is None:
        return UnknownJobError(arn)
    if job.claimed_by != owner or job.claimed_until is None or job.claimed_until <= now:
        return LeaseLost(arn, owner, job.claimed_by, job.claimed_until)
    return StaleTransition(arn, step, job.status, next_step(job))


async def guarded_update(
    conn: AsyncConnection,
    tenancy: Tenancy,
    arn: str,
    step: Step,
    now: datetime,
    values: Mapping[str, Any],
    returning: Any = None,
) -> int:
    """The fenced write, in the caller's transaction: raises the refusal when it matches no
    row. On PostgreSQL it also locks the job's row until the transaction ends, so no other
    process can take the lease over in the middle of it."""
    owner = tenancy.owner
    kept = {key: _kept(v) for key, v in values.items()}
    stmt = (
        update(_JOBS)
        .where(_C.batch_job_arn == arn, needs(step), held_by(owner, now))
        .values(**kept, updated_at=now, claimed_until=tenancy.until(now))
        .returning(_C.batch_job_arn if returning is None else returning)
    )
    value = (await conn.execute(stmt)).scalar_one_or_none()
    if value is None:
        raise await refusal(conn, arn, step, owner, now)
    return 1 if returning is None else int(value)


async def guarded_update_many(
    conn: AsyncConnection,
    tenancy: Tenancy,
    step: Step,
    now: datetime,
    changes: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, JobRow], dict[str, Exception]]:
    """The fenced write of several jobs at one step, each with its own values, in one UPDATE in
    the caller's transaction: a job is written only if it still needs `step` and this process
    holds its lease, exactly as guarded_update writes one. Returns the jobs written, as the
    write left them, and the refusal of each job it did not write (read in the same
    transaction): one job refused does not keep the others from being written. On PostgreSQL
    the rows written stay locked until the transaction ends, as with guarded_update."""
    if not changes:
        return {}, {}
    arns = list(changes)
    if len(arns) == 1:
        assignments = {key: _kept(v) for key, v in changes[arns[0]].items()}
    else:
        # One CASE a column, by job; a job that sets no value for it keeps its own.
        columns = sorted({key for values in changes.values() for key in values})
        assignments = {
            key: case(
                *(
                    (_C.batch_job_arn == arn, _bound(key, values[key]))
                    for arn, values in changes.items()
                    if key in values
                ),
                else_=_C[key],
            )
            for key in columns
        }
    stmt = (
        update(_JOBS)
        .where(_C.batch_job_arn.in_(arns), needs(step), held_by(tenancy.owner, now))
        .values(**assignments, updated_at=now, claimed_until=tenancy.until(now))
        .returning(*_JOBS.c)
    )
    written = {
        job.batch_job_arn: job
        for job in map(JobRow.from_mapping, (await conn.execute(stmt)).mappings())
    }
    missed = [arn for arn in arns if arn not in written]
    return written, await refusals(conn, missed, step, tenancy.owner, now)


def _kept(value: Any) -> Any:
    """Text from Bedrock or from an error (a message, last_error) as the store keeps it: a NUL
    in it would make PostgreSQL refuse the write, and the job would never move on."""
    return stored_text(value) if isinstance(value, str) else value


def _bound(column: str, value: Any) -> Any:
    """A value for a column inside an expression, typed as the column (the UTC datetimes'
    conversion, PostgreSQL's casts); an SQL expression as it is."""
    if isinstance(value, ClauseElement):
        return value
    return literal(_kept(value), _C[column].type)

"""Status changes. Each one is made by a step and names it: the job must still need that step
(domain.next_step) and this process must hold its lease, or the write is refused with
LeaseLost / StaleTransition. Every change also extends the lease, so a job that is being
worked on keeps it."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from batch_poller.domain import RESULTS_STORED, BedrockStatus, JobStatus, Step
from batch_poller.rows import JobRow, Progress, RecordTotals
from batch_poller.store.errors import store_operation
from batch_poller.store.groups import reopen, settled_jobs
from batch_poller.store.guards import Tenancy, free_or_held_by, guarded_update_many
from batch_poller.store.outbox import Outbox
from batch_poller.store.steps import needs
from batch_poller.store.tables import bedrock_batch_jobs as _JOBS
from batch_poller.store.text import stored_text
from batch_poller.store.transactions import Coalesced, Transactions

_C = _JOBS.c

# A job's progress, set by the listing's counts after its unchanged check was written.
_SET_PROGRESS = (
    update(_JOBS)
    .where(_C.batch_job_arn == bindparam("arn"))
    .values(
        progress_processed=bindparam("progress_processed"),
        progress_total=bindparam("progress_total"),
    )
)


def _progress_values(progress: Progress) -> dict[str, int | None]:
    return {"progress_processed": progress.processed, "progress_total": progress.total}


@dataclass(frozen=True, slots=True)
class Check:
    """What one check of a job found: Bedrock's status and what it means here; or, with
    `error`, that Bedrock refused to describe the job for good (not found, access denied),
    which fails it."""

    arn: str
    bedrock_status: BedrockStatus | None = None
    status: JobStatus = JobStatus.FAILED
    message: str | None = None
    completed_at: datetime | None = None
    progress: Progress | None = None
    error: str | None = None

    def values(self, now: datetime) -> dict[str, Any]:
        if self.error is not None:
            return {
                "status": JobStatus.FAILED.value,
                "last_error": self.error,
                "last_checked_at": now,
            }
        values: dict[str, Any] = {
            "last_checked_at": now,
            "bedrock_status": None if self.bedrock_status is None else self.bedrock_status.value,
            "status": self.status.value,
            "message": self.message,
        }
        if self.progress is not None:
            values.update(_progress_values(self.progress))
        if self.completed_at is not None:
            values["completed_at"] = self.completed_at
        return values

    @property
    def settles(self) -> bool:
        return self.error is not None or self.status is JobStatus.FAILED


# A transition of several jobs: each job as the write left it, or why it was refused.
Written = dict[str, JobRow | Exception]


class JobTransitions:
    tx: Transactions
    tenancy: Tenancy
    outbox: Outbox
    # The fetches that finish while others are being settled are settled together.
    _settling: Coalesced[str, tuple[datetime, dict[str, Any]], JobRow]

    def __init__(self) -> None:
        self._settling = Coalesced(self._settle_fetched)

    # -- check ---------------------------------------------------------------------------

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
        progress: Progress | None = None,
    ) -> JobRow:
        check = Check(arn, bedrock_status, status, message, completed_at, progress)
        return _one(await self._record_checks([check], now), arn)

    @store_operation("mark a check failed")
    async def mark_check_failed(self, arn: str, error: str, now: datetime) -> JobRow:
        """Bedrock refused to describe the job for good (not found, access denied)."""
        return _one(await self._record_checks([Check(arn, error=error)], now), arn)

    @store_operation("record checks")
    async def record_checks(self, checks: Sequence[Check], now: datetime) -> Written:
        """The checks of several jobs this process holds, in one guarded statement (one
        transaction, which also writes the events of the jobs they fail): each job as it is
        now, or why its check was refused (LeaseLost, StaleTransition), which keeps none of the
        others from being written."""
        return await self._record_checks(checks, now)

    async def _record_checks(self, checks: Sequence[Check], now: datetime) -> Written:
        changes = {check.arn: check.values(now) for check in checks}
        settling = {check.arn for check in checks if check.settles}
        return await self._transitions(Step.CHECK, now, changes, settling)

    @store_operation("requeue a failed job")
    async def requeue_failed(
        self,
        arn: str,
        *,
        bedrock_status: BedrockStatus,
        status: JobStatus,
        message: str | None,
        now: datetime,
    ) -> bool:
        """Puts a FAILED job back on its path with Bedrock's own status (tracking it again
        after its checks were refused). No step holds a FAILED job, so no lease is taken: the
        write only requires that it is still FAILED and nobody else holds it."""
        stmt = (
            update(_JOBS)
            .where(_C.batch_job_arn == arn, _C.status == JobStatus.FAILED.value)
            .where(free_or_held_by(self.tenancy.owner, now))
            .values(
                status=status.value,
                bedrock_status=bedrock_status.value,
                message=None if message is None else stored_text(message),
                last_checked_at=now,
                updated_at=now,
            )
            .returning(_C.group_name)
        )

        async def write(conn: AsyncConnection) -> bool:
            requeued = (await conn.execute(stmt)).first()
            if requeued is not None and requeued.group_name is not None:
                # Its group was compiled with it FAILED: compiled again once it settles.
                await reopen(conn, requeued.group_name, now)
            return requeued is not None

        return await self.tx.write(write)

    @store_operation("record checks")
    async def record_unchanged(
        self, unchanged: Mapping[BedrockStatus, Mapping[str, Progress]], now: datetime
    ) -> set[str]:
        """One check of many jobs that a listing showed unchanged, one statement per status,
        without taking their leases: each is written only if it still needs its check, still
        has that status and nobody else holds it; then their progress, in one executemany.
        Returns the jobs written."""

        async def write(conn: AsyncConnection) -> set[str]:
            written: set[str] = set()
            for bedrock_status, arns in unchanged.items():
                if not arns:
                    continue
                stmt = (
                    update(_JOBS)
                    .where(_C.batch_job_arn.in_(list(arns)))
                    .where(needs(Step.CHECK), _C.bedrock_status == bedrock_status.value)
                    .where(free_or_held_by(self.tenancy.owner, now))
                    .values(last_checked_at=now, updated_at=now)
                    .returning(_C.batch_job_arn)
                )
                written.update((await conn.execute(stmt)).scalars())
            progress = [
                {"arn": arn, **_progress_values(counts)}
                for by_arn in unchanged.values()
                for arn, counts in by_arn.items()
                if arn in written
            ]
            if progress:
                await conn.execute(_SET_PROGRESS, progress)
            return written

        return await self.tx.write(write)

    @store_operation("make jobs due")
    async def make_due(self, arns: Collection[str], now: datetime) -> set[str]:
        """Jobs an event named are due for their check at once (their last check forgotten,
        unless another process holds them: it is at work on them already). Returns the ARNs
        that are tracked."""
        if not arns:
            return set()
        named = _C.batch_job_arn.in_(list(arns))
        stmt = (
            update(_JOBS)
            .where(named, needs(Step.CHECK), free_or_held_by(self.tenancy.owner, now))
            .values(last_checked_at=None, updated_at=now)
        )

        async def write(conn: AsyncConnection) -> set[str]:
            await conn.execute(stmt)
            return set((await conn.execute(select(_C.batch_job_arn).where(named))).scalars())

        return await self.tx.write(write)

    # -- fetch ---------------------------------------------------------------------------

    @store_operation("mark results stored")
    async def mark_results_fetched(
        self, arn: str, totals: RecordTotals, status: JobStatus, now: datetime
    ) -> JobRow:
        if status not in RESULTS_STORED:
            raise ValueError(
                f"results fetched means COMPLETED or PARTIALLY_COMPLETED, not {status}"
            )
        values = {
            "results_fetched_at": now,
            "status": status.value,
            "total_records": totals.total,
            "success_records": totals.ok,
            "error_records": totals.error,
            "input_tokens": totals.input_tokens,
            "output_tokens": totals.output_tokens,
            "cost": totals.cost,
            "last_error": None,
            "fetch_retry_at": None,
        }
        return await self._settling(arn, (now, values))

    async def _settle_fetched(self, settles: dict[str, tuple[datetime, dict[str, Any]]]) -> Written:
        """Jobs whose results are stored, settled in one transaction: one guarded statement,
        their events. The latest of their times is the write's: a lease must still be live
        when the write is made."""
        now = max(at for at, _ in settles.values())
        changes = {arn: values for arn, (_, values) in settles.items()}
        return await self._transitions(Step.FETCH, now, changes, set(changes))

    @store_operation("count a fetch attempt")
    async def increment_fetch_attempts(self, arn: str, error: str | None, now: datetime) -> int:
        """Count one more fetch attempt; ``error=None`` keeps the previous last_error."""
        values: dict[str, Any] = {"results_fetch_attempts": _C.results_fetch_attempts + 1}
        if error is not None:
            values["last_error"] = error
        job = await self._transition(arn, Step.FETCH, now, values)
        return job.results_fetch_attempts

    @store_operation("mark a fetch failed")
    async def mark_fetch_failed(
        self, arn: str, error: str, now: datetime, retry_at: datetime | None = None
    ) -> JobRow:
        """`retry_at`: when the daemon tries it again by itself (None: only when asked)."""
        return await self._transition(
            arn,
            Step.FETCH,
            now,
            {
                "status": JobStatus.RESULT_FETCH_FAILED.value,
                "last_error": error,
                "fetch_failures": _C.fetch_failures + 1,
                "fetch_retry_at": retry_at,
            },
        )

    # -- cleanup -------------------------------------------------------------------------

    @store_operation("hold a job")
    async def hold(self, arn: str, step: Step, now: datetime) -> None:
        """Checks, and extends, this process's lease on a job that still needs `step`: the
        fence before a deletion in S3, which no database transaction can cover."""
        await self._transition(arn, step, now, {})

    @store_operation("count bytes freed")
    async def add_bytes_freed(self, arn: str, freed: int, now: datetime) -> None:
        """Counts bytes as they are deleted, so an interrupted cleanup keeps its count."""
        bytes_freed = func.coalesce(_C.bytes_freed, 0) + freed
        await self._transition(arn, Step.CLEAN, now, {"bytes_freed": bytes_freed})

    @store_operation("mark cleanup done")
    async def mark_cleanup_completed(self, arn: str, now: datetime) -> JobRow:
        """Cleanup is done; the last_error it may have left is cleared."""
        values = {"cleanup_completed_at": now, "last_error": None}
        return await self._transition(arn, Step.CLEAN, now, values)

    @store_operation("record a cleanup error")
    async def record_cleanup_error(self, arn: str, error: str, now: datetime) -> int:
        """Keep cleanup pending; returns the new cleanup_attempts."""
        values = {"cleanup_attempts": _C.cleanup_attempts + 1, "last_error": error}
        job = await self._transition(arn, Step.CLEAN, now, values)
        return job.cleanup_attempts

    # -- the guard -----------------------------------------------------------------------

    async def _transition(
        self,
        arn: str,
        step: Step,
        now: datetime,
        values: Mapping[str, Any],
        *,
        settles: bool = False,
    ) -> JobRow:
        """One guarded UPDATE; the job as it left it. `settles`: the job is done with (stored
        or failed), so its event, and its group's compile, are written in the same
        transaction."""
        return _one(
            await self._transitions(step, now, {arn: values}, {arn} if settles else ()), arn
        )

    async def _transitions(
        self,
        step: Step,
        now: datetime,
        changes: Mapping[str, Mapping[str, Any]],
        settling: Collection[str] = (),
    ) -> Written:
        """One guarded UPDATE of several jobs at one step, each with its values, in one
        transaction with the events of those of `settling` it wrote (and their groups'
        compiles): a job's settle and its event commit together, or neither does."""

        async def write(conn: AsyncConnection) -> tuple[Written, bool]:
            written, refused = await guarded_update_many(conn, self.tenancy, step, now, changes)
            settled_now = [job for arn, job in sorted(written.items()) if arn in settling]
            if settled_now:
                compiled = await settled_jobs(conn, self.outbox, settled_now, now)
                # The jobs of a group compiled now, read again as the transaction leaves them.
                regrouped = [arn for arn, job in written.items() if job.group_name in compiled]
                written.update(await _read_jobs(conn, regrouped))
            return {**written, **refused}, bool(settled_now)

        results, emitted = await self.tx.write(write)
        if emitted:
            self.outbox.announce()
        return results


async def _read_jobs(conn: AsyncConnection, arns: Collection[str]) -> dict[str, JobRow]:
    if not arns:
        return {}
    query = select(_JOBS).where(_C.batch_job_arn.in_(list(arns)))
    rows = map(JobRow.from_mapping, (await conn.execute(query)).mappings())
    return {job.batch_job_arn: job for job in rows}


def _one(results: Written, arn: str) -> JobRow:
    """The one job a transition wrote; its refusal raised."""
    result = results[arn]
    if isinstance(result, Exception):
        raise result
    return result

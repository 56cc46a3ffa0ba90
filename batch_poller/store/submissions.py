"""Jobs this project submits: recorded before CreateModelInvocationJob, so that a job created
by a process that died before it heard back is still found (its client token asks Bedrock for
it again) and tracked; and kept queued while the model's quota has no room."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from batch_poller.rows import SubmissionRow
from batch_poller.store.engine import dialect_insert
from batch_poller.store.errors import store_operation
from batch_poller.store.tables import submissions as _SUBMISSIONS
from batch_poller.store.text import stored_text
from batch_poller.store.transactions import Transactions

PENDING = ("queued", "creating")


class SubmissionStore:
    tx: Transactions

    @store_operation("record submissions")
    async def record_submissions(self, rows: Sequence[SubmissionRow], now: datetime) -> None:
        """Records the jobs to create, in state "queued"; one already recorded (the same
        submission again) is left as it is."""
        values = [
            {**row.as_values(), "state": "queued", "created_at": now, "updated_at": now}
            for row in rows
        ]

        async def write(conn: AsyncConnection) -> None:
            insert = dialect_insert(conn.dialect.name, _SUBMISSIONS)
            await conn.execute(insert.on_conflict_do_nothing(), values)

        if values:
            await self.tx.write(write)

    @store_operation("read submissions")
    async def submissions(
        self, tokens: Sequence[str] | None = None, *, pending_only: bool = False
    ) -> list[SubmissionRow]:
        """Submissions in the order they were recorded: those with these tokens, or all; only
        those not yet tracked."""
        query = select(_SUBMISSIONS).order_by(_SUBMISSIONS.c.created_at, _SUBMISSIONS.c.job_name)
        if tokens is not None:
            query = query.where(_SUBMISSIONS.c.client_token.in_(list(tokens)))
        if pending_only:
            query = query.where(_SUBMISSIONS.c.state.in_(PENDING))

        async def read(conn: AsyncConnection) -> list[SubmissionRow]:
            result = await conn.execute(query)
            return [SubmissionRow.from_mapping(row) for row in result.mappings()]

        return await self.tx.read(read)

    @store_operation("update a submission")
    async def mark_submission(
        self,
        token: str,
        state: str,
        now: datetime,
        *,
        arn: str | None = None,
        error: str | None = None,
    ) -> None:
        values: dict[str, object] = {"state": state, "updated_at": now, "last_error": None}
        if arn is not None:
            values["batch_job_arn"] = arn
        if error is not None:
            values["last_error"] = stored_text(error)

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                update(_SUBMISSIONS).where(_SUBMISSIONS.c.client_token == token).values(values)
            )

        await self.tx.write(write)

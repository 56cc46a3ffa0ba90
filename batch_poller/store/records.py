"""A job's result records: fenced upserts while its results are fetched, and the reads that
check them against the manifest."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from batch_poller.domain import Step
from batch_poller.rows import RecordRow, RecordTotals
from batch_poller.store.bulk import postgres_upsert, sqlite_upsert
from batch_poller.store.errors import store_operation
from batch_poller.store.groups import latest_versions
from batch_poller.store.guards import Tenancy, guarded_update
from batch_poller.store.tables import batch_records as _RECORDS
from batch_poller.store.tables import bedrock_batch_jobs as _JOBS
from batch_poller.store.text import stored_record_id, stored_row, stored_text
from batch_poller.store.transactions import Transactions

_RECORD_FIELDS = RecordRow._fields


@dataclass(frozen=True, slots=True)
class RecordScope:
    """Which records: one job's, a group's (across its jobs), or every job's of one record id;
    exactly one is named."""

    job: str | None = None
    group: str | None = None
    record_id: str | None = None

    def __post_init__(self) -> None:
        if [self.job, self.group, self.record_id].count(None) != 2:
            raise ValueError("a record scope names one job, one group or one record id")


# A stored record and the job it belongs to.
StoredRecord = tuple[str, RecordRow]


@dataclass(frozen=True, slots=True)
class WriteReport:
    written: int
    # Rows not written: their record id belongs to another line already.
    conflicts: list[RecordRow]


def _origin(row: RecordRow) -> tuple[str | None, int | None]:
    return row.source_file, row.line_number


def _rounds(rows: Iterable[RecordRow]) -> list[list[RecordRow]]:
    """The rows in rounds of distinct record ids, each line once (its last reading): the first
    line naming an id in the first round, the next in the second, and so on. Written round by
    round, the line that holds an id already keeps it, whichever comes first in the batch, and
    every other line naming it is refused."""
    batch = list(rows)
    if len({row.record_id for row in batch}) == len(batch):
        return [batch]  # the usual batch: every id once, so every line once
    lines: dict[tuple[str, str | None, int | None], RecordRow] = {}
    for row in batch:
        lines[(row.record_id, *_origin(row))] = row
    rounds: list[list[RecordRow]] = []
    seen: dict[str, int] = {}
    for row in lines.values():
        index = seen.get(row.record_id, 0)
        seen[row.record_id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(row)
    return rounds


@dataclass(frozen=True, slots=True)
class RetryRecord:
    """A record to run again: where its latest version is, and the input to run."""

    batch_job_arn: str
    record_id: str
    error_code: str
    model_input: str | None  # None: not kept ([results] store_error_input off)


class RecordStore:
    tx: Transactions
    tenancy: Tenancy

    @store_operation("store records")
    async def write_records(
        self, arn: str, rows: Sequence[RecordRow], now: datetime
    ) -> WriteReport:
        """Upserts records in one transaction, fenced: only while this process holds the job's
        lease and the job still needs its results fetched.

        A record written again from the same file and line replaces the stored one, so a
        resumed ingest is harmless. A row whose record id is already taken by another line is
        not written: it comes back in `conflicts`, for the caller to store under another id.
        """
        rounds = _rounds(map(stored_row, rows))

        async def write(conn: AsyncConnection) -> list[RecordRow]:
            await guarded_update(conn, self.tenancy, arn, Step.FETCH, now, {})
            upsert = sqlite_upsert if conn.dialect.name == "sqlite" else postgres_upsert
            refused: list[RecordRow] = []
            for batch in rounds:
                if taken := await upsert(conn, arn, now, batch):
                    refused += [row for row in batch if row.record_id in taken]
            return refused

        conflicts = await self.tx.write(write)
        written = sum(map(len, rounds)) - len(conflicts)
        return WriteReport(written, conflicts)

    @store_operation("keep a line's input")
    async def keep_input_of_line(
        self, arn: str, record_id: str, model_input: str, error_message: str, now: datetime
    ) -> None:
        """Keeps a record's input with the stored line that stands for it (a line cut inside
        its id, told by what was left of it)."""

        async def write(conn: AsyncConnection) -> None:
            await guarded_update(conn, self.tenancy, arn, Step.FETCH, now, {})
            await conn.execute(
                update(_RECORDS)
                .where(_RECORDS.c.batch_job_arn == arn, _RECORDS.c.record_id == record_id)
                .values(model_input=model_input, error_message=stored_text(error_message))
            )

        await self.tx.write(write)

    @store_operation("read records to run again")
    async def records_to_retry(
        self, arns: Sequence[str], codes: Collection[str], of_jobs: Sequence[str] | None = None
    ) -> list[RetryRecord]:
        """The records of these jobs whose latest version among them (a resubmission's, where
        one ran them again) is an error with one of the codes, by record id; only the ids that
        `of_jobs` hold, when named."""
        r = _RECORDS.c
        ranked = latest_versions(
            _JOBS.c.batch_job_arn.in_(list(arns)), r.batch_job_arn, r.error_code, r.model_input
        )
        query = (
            select(ranked.c.batch_job_arn, ranked.c.record_id, ranked.c.error_code)
            .add_columns(ranked.c.model_input)
            .where(
                ranked.c.version == 1,
                ranked.c.outcome == "error",
                ranked.c.error_code.in_([stored_text(code) for code in codes]),
            )
            .order_by(ranked.c.record_id)
        )
        if of_jobs is not None:
            held = select(_RECORDS.c.record_id).where(_RECORDS.c.batch_job_arn.in_(list(of_jobs)))
            query = query.where(ranked.c.record_id.in_(held))

        async def read(conn: AsyncConnection) -> list[RetryRecord]:
            return [RetryRecord(*row) for row in await conn.execute(query)]

        return await self.tx.read(read)

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

        async def read(conn: AsyncConnection) -> RecordTotals:
            total = ok = error = input_tokens = output_tokens = 0
            cost: Decimal | None = None
            by_error_code: dict[str, int] = {}
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
            return RecordTotals(total, ok, error, input_tokens, output_tokens, cost, by_error_code)

        return await self.tx.read(read)

    @store_operation("count error codes")
    async def error_code_counts(self, arn: str) -> list[tuple[str | None, int]]:
        """The job's error records by error code (None: an error without one), the most
        frequent first, then by code (sorted here: the databases collate text differently)."""
        query = (
            select(_RECORDS.c.error_code, func.count())
            .where(_RECORDS.c.batch_job_arn == arn, _RECORDS.c.outcome == "error")
            .group_by(_RECORDS.c.error_code)
        )

        async def read(conn: AsyncConnection) -> list[tuple[str | None, int]]:
            counts = [(code, int(n)) for code, n in await conn.execute(query)]
            return sorted(counts, key=lambda item: (-item[1], item[0] is None, item[0] or ""))

        return await self.tx.read(read)

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

        async def read(conn: AsyncConnection) -> list[RecordRow]:
            result = await conn.execute(query)
            return [RecordRow(outcome="error", **row) for row in result.mappings()]

        return await self.tx.read(read)

    async def stream_records(
        self, scope: RecordScope, *, errors_only: bool = False, chunk: int = 1000
    ) -> AsyncIterator[StoredRecord]:
        """The scope's records in (job, record id) order, read `chunk` at a time by key (never
        all at once, and no transaction held open between chunks)."""
        after: tuple[str, str] | None = None
        outcome = "error" if errors_only else None
        while True:
            rows = await self.records_page(scope, after=after, limit=chunk, outcome=outcome)
            for row in rows:
                yield row
            if len(rows) < chunk:
                return
            after = (rows[-1][0], rows[-1][1].record_id)

    @store_operation("read records")
    async def records_page(
        self,
        scope: RecordScope,
        *,
        after: tuple[str, str] | None = None,
        limit: int = 100,
        outcome: str | None = None,
        error_code: str | None = None,
    ) -> list[StoredRecord]:
        """Up to `limit` of the scope's records after the (job ARN, record id) `after` (a
        page's last is the next page's cursor), in that order; only those of an outcome, an
        error code.

        A job's records (and a group's, job after job) are read by their key from the cursor
        on, so every page costs the same however deep it is; a record id's few records come
        through the record id index."""
        # Asked for as they are stored (a NUL, an overlong id), so a record is found by the id
        # it was written with, and no text the database refuses reaches it.
        record_id = None if scope.record_id is None else stored_record_id(scope.record_id)
        if error_code is not None:
            error_code = stored_text(error_code)
        if after is not None:
            after = (stored_text(after[0]), stored_record_id(after[1]))
        c = _RECORDS.c
        # In RecordRow's field order, so that a row is built from its tuple as it comes.
        base = select(c.batch_job_arn, *(c[name] for name in _RECORD_FIELDS))
        if outcome is not None:
            base = base.where(c.outcome == outcome)
        if error_code is not None:
            base = base.where(c.error_code == error_code)
        base = base.order_by(c.batch_job_arn, c.record_id)

        def rows(result: Any) -> list[StoredRecord]:
            return [(arn, RecordRow(*values)) for arn, *values in result]

        async def of_one_id(conn: AsyncConnection) -> list[StoredRecord]:
            query = base.where(c.record_id == record_id)
            if after is not None:
                query = query.where(tuple_(c.batch_job_arn, c.record_id) > tuple_(*after))
            return rows(await conn.execute(query.limit(limit)))

        async def job_by_job(conn: AsyncConnection) -> list[StoredRecord]:
            if scope.job is not None:
                arns = [scope.job]
            else:
                members = select(_JOBS.c.batch_job_arn).where(_JOBS.c.group_name == scope.group)
                arns = sorted((await conn.execute(members)).scalars())
            page: list[StoredRecord] = []
            for arn in arns:
                if after is not None and arn < after[0]:
                    continue
                query = base.where(c.batch_job_arn == arn)
                if after is not None and arn == after[0]:
                    query = query.where(c.record_id > after[1])
                page += rows(await conn.execute(query.limit(limit - len(page))))
                if len(page) == limit:
                    break
            return page

        return await self.tx.read(of_one_id if record_id is not None else job_by_job)

    @store_operation("read record ids")
    async def record_ids(self, arn: str) -> set[str]:
        query = select(_RECORDS.c.record_id).where(_RECORDS.c.batch_job_arn == arn)

        async def read(conn: AsyncConnection) -> set[str]:
            return set((await conn.execute(query)).scalars())

        return await self.tx.read(read)

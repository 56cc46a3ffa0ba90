"""Record rows into the store: batched, overlapping reads with writes, idempotent, and ids that
another line already took stored under a name that says where they came from. Shared by the
result files' ingest and a partial job's unprocessed records."""

from __future__ import annotations

import asyncio
import itertools
import operator
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import structlog

from batch_poller.aws.s3 import S3
from batch_poller.clock import Clock
from batch_poller.config import ResultsSettings
from batch_poller.metrics import Metrics
from batch_poller.rows import JobRow, RecordRow
from batch_poller.store import JobStore, StoreError, WriteReport, stored_record_id

log = structlog.get_logger("batch_poller.ingest")
QUEUED_BATCHES = 4  # parsed batches waiting for the store: bounds memory, lets work overlap
BATCH_BYTES = 8 * 1024 * 1024
RENAME_ATTEMPTS = 5


class FetchError(Exception):
    """The results cannot be stored as they are; the message goes to last_error."""


class Interrupted(Exception):
    """The daemon is stopping: what was committed stays, the job is resumed at the next start."""


@dataclass(frozen=True)
class IngestContext:
    """What ingesting one job needs besides the job itself."""

    s3: S3
    store: JobStore
    clock: Clock
    settings: ResultsSettings
    stopping: asyncio.Event
    cost_of: Callable[[int, int], Decimal] | None
    metrics: Metrics | None = None


async def write_batches(
    job: JobRow, pieces: AsyncIterator[Sequence[RecordRow]], ctx: IngestContext
) -> None:
    """Parses and writes at the same time: a reader fills a small queue, a writer drains it.
    The rows come in pieces (a chunk's lines), regrouped here into the store's batches."""
    queue: asyncio.Queue[list[RecordRow] | None] = asyncio.Queue(maxsize=QUEUED_BATCHES)

    async def read() -> None:
        # Rows are cut by count, and by size at a piece's end: large echoed inputs must not
        # fill memory. Counted a piece at a time, not a row: millions of rows go through.
        limit = ctx.settings.batch_size
        batch: list[RecordRow] = []
        size = 0
        async for piece in pieces:
            batch += piece
            size += _bytes_of(piece)
            while len(batch) >= limit:
                await queue.put(batch[:limit])
                batch = batch[limit:]
                size = _bytes_of(batch)
            if size >= BATCH_BYTES:
                await queue.put(batch)
                batch, size = [], 0
        await queue.put(batch)
        await queue.put(None)

    async def write() -> None:
        while (batch := await queue.get()) is not None:
            if batch:
                await _write(job, batch, ctx)
            if ctx.stopping.is_set():
                raise Interrupted(f"stopped while storing {job.batch_job_arn}")

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(read())
            group.create_task(write())
    except BaseExceptionGroup as failed:
        # One task failed and the other was cancelled: raise the cause itself, a stop first.
        stopped = failed.subgroup(Interrupted)
        raise (stopped or failed).exceptions[0] from None


async def _write(job: JobRow, rows: list[RecordRow], ctx: IngestContext) -> None:
    report = await _write_naming_lines(job, rows, ctx)
    if ctx.metrics is not None:
        errors = list(map(_OUTCOME, rows)).count("error")
        ctx.metrics.records.labels("ok").inc(len(rows) - errors)
        ctx.metrics.records.labels("error").inc(errors)
    waiting = report.conflicts
    if waiting:
        # The same id on two lines (two input files with the same ids): keep both records, the
        # later one under an id that says where it came from.
        log.warning("duplicate_record_ids", count=len(waiting))
    for attempt in range(1, RENAME_ATTEMPTS + 1):
        if not waiting:
            return
        renamed = {stored_record_id(_another_name(row, attempt)): row for row in waiting}
        report = await _write_naming_lines(
            job, [row._replace(record_id=name) for name, row in renamed.items()], ctx
        )
        # A literal id in the data may already be that name: then the next one is tried.
        waiting = [renamed[row.record_id] for row in report.conflicts]
    first = waiting[0]
    raise FetchError(
        f"{first.source_file} line {first.line_number}: record id {first.record_id!r} and every "
        "other name tried for it are taken by other lines"
    )


async def one_by_one(rows: AsyncIterator[RecordRow]) -> AsyncIterator[Sequence[RecordRow]]:
    """Rows made one at a time, as write_batches takes them."""
    async for row in rows:
        yield (row,)


def _another_name(row: RecordRow, attempt: int) -> str:
    """`{id}@{file}:{line}`, then `...#2`, `...#3`: where the line came from."""
    suffix = "" if attempt == 1 else f"#{attempt}"
    return f"{row.record_id}@{row.source_file}:{row.line_number}{suffix}"


async def _write_naming_lines(
    job: JobRow, rows: list[RecordRow], ctx: IngestContext
) -> WriteReport:
    """Writes the rows; a failure names the lines it was writing, so the culprit can be found."""
    try:
        return await ctx.store.write_records(job.batch_job_arn, rows, ctx.clock.now())
    except StoreError as error:
        files = sorted({row.source_file or "?" for row in rows})
        lines = [row.line_number for row in rows if row.line_number is not None]
        where = f"{', '.join(files)} lines {min(lines)}-{max(lines)}" if lines else ", ".join(files)
        raise StoreError(f"{error} (writing {where})", error.original) from None


_TEXTS = operator.itemgetter(
    RecordRow._fields.index("model_output"),
    RecordRow._fields.index("model_input"),
    RecordRow._fields.index("raw_text"),
)
_OUTCOME = operator.itemgetter(RecordRow._fields.index("outcome"))


def _bytes_of(rows: Sequence[RecordRow]) -> int:
    """The length of the rows' large texts, summed without a Python step per row."""
    return sum(map(len, filter(None, itertools.chain.from_iterable(map(_TEXTS, rows)))))

"""A finished job's `.jsonl.out` files -> record rows in the store, streamed and batched, then
checked against `manifest.json.out`. Every step is idempotent: running it twice stores each
record once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import structlog

from batch_poller.aws.s3 import S3, OverlongLine, S3Uri
from batch_poller.clock import Clock
from batch_poller.config import ResultsSettings
from batch_poller.metrics import Metrics
from batch_poller.records import (
    LINE_TOO_LONG,
    NOT_PROCESSED,
    PARSE_ERROR,
    cut_record_id,
    overlong_line,
    parse_line,
    placeholder_id,
)
from batch_poller.store import (
    JobRow,
    JobStore,
    RecordRow,
    RecordTotals,
    StoreError,
    WriteReport,
    stored_record_id,
)

log = structlog.get_logger(__name__)
MANIFEST = "manifest.json.out"
QUEUED_BATCHES = 4  # parsed batches waiting for the store: bounds memory, lets work overlap
BATCH_BYTES = 8 * 1024 * 1024
RENAME_ATTEMPTS = 5
_UNREADABLE = (PARSE_ERROR, LINE_TOO_LONG)


class FetchError(Exception):
    """The results cannot be stored as they are; the message goes to last_error."""


class Interrupted(Exception):
    """The daemon is stopping: what was committed stays, the job is resumed at the next start."""


@dataclass(frozen=True)
class Manifest:
    total: int
    processed: int
    success: int
    error: int
    input_tokens: int
    output_tokens: int

    @classmethod
    def parse(cls, data: bytes, where: str) -> Manifest:
        try:
            raw = orjson.loads(data)
            return cls(
                total=int(raw["totalRecordCount"]),
                processed=int(raw["processedRecordCount"]),
                success=int(raw["successRecordCount"]),
                error=int(raw["errorRecordCount"]),
                input_tokens=int(raw.get("inputTokenCount", 0)),
                output_tokens=int(raw.get("outputTokenCount", 0)),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise FetchError(f"{where} is not a readable manifest: {error}") from None


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


async def ingest_job(
    job: JobRow, partial: bool, ctx: IngestContext
) -> tuple[RecordTotals, Manifest]:
    """Stores every record of a finished job and checks the store against the manifest."""
    if not job.output_s3_prefix:
        raise FetchError("the job has no output location")
    folder = S3Uri.parse(job.output_s3_prefix)
    files = [
        item.key async for item in ctx.s3.list_objects(folder) if _is_result_file(item.key, folder)
    ]
    manifest_uri = folder.child(folder.key + MANIFEST)
    manifest_bytes = await ctx.s3.read_bytes(manifest_uri)
    if manifest_bytes is None:
        what = "no .jsonl.out file and no manifest" if not files else "no manifest"
        raise FetchError(f"Bedrock wrote {what} under {folder}")
    manifest = Manifest.parse(manifest_bytes, str(manifest_uri))
    if not files and manifest.processed:
        raise FetchError(
            f"the manifest counts {manifest.processed} records but {folder} has no .jsonl.out file"
        )
    for key in sorted(files):
        await _ingest_file(job, folder.child(key), key[len(folder.key) :], ctx)
    untold = await _store_unprocessed(job, ctx) if partial else 0
    totals = await ctx.store.record_counts(job.batch_job_arn)
    check_against_manifest(totals, manifest, partial, untold)
    return totals, manifest


def _is_result_file(key: str, folder: S3Uri) -> bool:
    """Bedrock writes its `.jsonl.out` files at the top of the job's folder, never below."""
    name = key[len(folder.key) :] if key.startswith(folder.key) else ""
    return name.endswith(".jsonl.out") and "/" not in name


async def _ingest_file(job: JobRow, uri: S3Uri, name: str, ctx: IngestContext) -> None:
    limit = ctx.settings.max_line_bytes

    def to_row(number: int, line: bytes | OverlongLine) -> RecordRow:
        if isinstance(line, OverlongLine):
            return overlong_line(line.prefix, line.length, name, number, limit)
        return parse_line(
            line,
            source_file=name,
            line_number=number,
            store_model_input=ctx.settings.store_model_input,
            cost_of=ctx.cost_of,
        )

    rows = (to_row(n, line) async for n, line in ctx.s3.lines(uri, limit))
    await _write_batches(job, rows, ctx)


async def _write_batches(job: JobRow, rows: AsyncIterator[RecordRow], ctx: IngestContext) -> None:
    """Parses and writes at the same time: a reader fills a small queue, a writer drains it."""
    queue: asyncio.Queue[list[RecordRow] | None] = asyncio.Queue(maxsize=QUEUED_BATCHES)

    async def read() -> None:
        batch: list[RecordRow] = []
        size = 0
        async for row in rows:
            batch.append(row)
            size += _row_bytes(row)
            # Rows are cut by count and by size: large echoed inputs must not fill memory.
            if len(batch) >= ctx.settings.batch_size or size >= BATCH_BYTES:
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
        errors = sum(row.outcome == "error" for row in rows)
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
            job, [dataclasses.replace(row, record_id=name) for name, row in renamed.items()], ctx
        )
        # A literal id in the data may already be that name: then the next one is tried.
        waiting = [renamed[row.record_id] for row in report.conflicts]
    first = waiting[0]
    raise FetchError(
        f"{first.source_file} line {first.line_number}: record id {first.record_id!r} and every "
        "other name tried for it are taken by other lines"
    )


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


def _row_bytes(row: RecordRow) -> int:
    return sum(len(text) for text in (row.model_output, row.model_input, row.raw_text) if text)


async def _store_unprocessed(job: JobRow, ctx: IngestContext) -> int:
    """A PartiallyCompleted job's unprocessed records exist only in its input: keep them.

    Returns how many unreadable output lines could not be told apart from the unprocessed
    records: the input of such a line's record is kept as unprocessed too.
    """
    if not job.input_s3_uri:
        raise FetchError("a partially completed job without an input location")
    stored = await ctx.store.record_ids(job.batch_job_arn)
    source = S3Uri.parse(job.input_s3_uri)
    if source.key.endswith(".jsonl"):
        keys = [source.key]
    else:
        folder = source.key if source.key.endswith("/") or not source.key else source.key + "/"
        listed = [item.key async for item in ctx.s3.list_objects(source.child(folder))]
        keys = sorted(key for key in listed if key.endswith(".jsonl"))
    if not keys:
        raise FetchError(
            f"the input {job.input_s3_uri} is gone: its unprocessed records cannot be kept"
        )
    without_id = 0

    async def inputs() -> AsyncIterator[tuple[str, int, str | None, str]]:
        nonlocal without_id
        without_id = 0
        for key in keys:
            async for number, line in ctx.s3.lines(source.child(key), ctx.settings.max_line_bytes):
                record_id, model_input = _input_record(line, key, number)
                without_id += record_id is None
                yield key, number, record_id, model_input

    unnamed = [
        line
        for line in await ctx.store.unreadable_lines(job.batch_job_arn, _UNREADABLE)
        if line.record_id
        == placeholder_id(line.error_code or "", line.source_file, line.line_number)
    ]
    cuts = [(line, cut_record_id(line.raw_text or "")) for line in unnamed]
    told: dict[str, RecordRow] = {}
    if any(cut is not None for _, cut in cuts):
        waiting = [
            stored_record_id(rid)
            async for _, _, rid, _ in inputs()
            if rid and stored_record_id(rid) not in stored
        ]
        told = _tell_cut_lines(cuts, waiting)
    inputs_of_cut_lines: list[tuple[RecordRow, str, str]] = []

    async def unprocessed() -> AsyncIterator[RecordRow]:
        async for key, number, record_id, model_input in inputs():
            if record_id is None or stored_record_id(record_id) in stored:
                continue
            if (cut_line := told.get(stored_record_id(record_id))) is not None:
                # Processed, its output line cut: its input stays with that line.
                inputs_of_cut_lines.append((cut_line, record_id, model_input))
                continue
            yield RecordRow(
                record_id=record_id,
                outcome="error",
                model_input=model_input,
                error_code=NOT_PROCESSED,
                error_message="Bedrock did not process this record before the job ended",
                source_file=key,
                line_number=number,
            )

    await _write_batches(job, unprocessed(), ctx)
    for line, record_id, model_input in inputs_of_cut_lines:
        note = f"{line.error_message}; the record is {record_id!r}, its modelInput kept here"
        await ctx.store.keep_input_of_line(job.batch_job_arn, line.record_id, model_input, note)
    if without_id:
        # Bedrock named these records itself: which of them it processed cannot be told, so
        # the input must stay where it is.
        raise FetchError(
            f"{without_id} input records have no recordId, so the unprocessed ones cannot be "
            f"told apart; {job.input_s3_uri} is kept"
        )
    return len(cuts) - len(told)


def _tell_cut_lines(
    cuts: list[tuple[RecordRow, str | None]], waiting: list[str]
) -> dict[str, RecordRow]:
    """The records that unreadable lines cut inside their id stand for, by stored id: those
    whose id begins with what is left of it, where exactly one record not yet stored does."""
    told: dict[str, RecordRow] = {}
    for line, cut in cuts:
        if cut is None:
            continue
        matches = [rid for rid in waiting if rid.startswith(cut) and rid not in told]
        if len(matches) == 1:
            told[matches[0]] = line
    return told


def _input_record(line: bytes | OverlongLine, key: str, number: int) -> tuple[str | None, str]:
    """The record id of an input line (None if it has none) and its modelInput as JSON text."""
    if isinstance(line, OverlongLine):
        raise FetchError(f"input {key} line {number} is over the line limit: it cannot be kept")
    try:
        item: Any = orjson.loads(line.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError:
        raise FetchError(f"input {key} line {number} is not valid JSON") from None
    if not isinstance(item, dict):
        raise FetchError(f"input {key} line {number} is not a record")
    record_id = item.get("recordId")
    model_input = orjson.dumps(item.get("modelInput")).decode()
    return (record_id if isinstance(record_id, str) and record_id else None), model_input


def check_against_manifest(
    totals: RecordTotals, manifest: Manifest, partial: bool, untold: int = 0
) -> None:
    """Stored records must match the manifest; an unreadable line may have been either kind.

    `untold` unreadable lines of a partial job could not be told apart from the unprocessed
    records, so as many records may be stored twice: as the line, and as their kept input.
    """
    unreadable = sum(totals.by_error_code.get(code, 0) for code in _UNREADABLE)
    not_processed = totals.by_error_code.get(NOT_PROCESSED, 0)
    processed = totals.total - not_processed
    known_errors = totals.error - not_processed - unreadable
    problems = []
    if processed != manifest.processed:
        problems.append(f"{processed} processed records stored, manifest says {manifest.processed}")
    if not totals.ok <= manifest.success <= totals.ok + unreadable:
        problems.append(f"{totals.ok} successes stored, manifest says {manifest.success}")
    if not known_errors <= manifest.error <= known_errors + unreadable:
        problems.append(f"{known_errors} errors stored, manifest says {manifest.error}")
    if partial and not manifest.total <= totals.total <= manifest.total + untold:
        problems.append(f"{totals.total} records stored in all, manifest says {manifest.total}")
    if problems:
        raise FetchError("results do not match the manifest: " + "; ".join(problems))

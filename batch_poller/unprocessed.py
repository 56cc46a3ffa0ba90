"""A PartiallyCompleted job's records that Bedrock never processed exist only in its input:
they are stored as NOT_PROCESSED with their modelInput, before the input may be deleted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from batch_poller.aws.s3 import OverlongLine, S3Uri
from batch_poller.records import (
    NOT_PROCESSED,
    UNREADABLE_CODES,
    cut_record_id,
    placeholder_id,
)
from batch_poller.rows import JobRow, RecordRow
from batch_poller.store import stored_record_id
from batch_poller.writing import FetchError, IngestContext, one_by_one, write_batches


async def store_unprocessed(job: JobRow, ctx: IngestContext) -> int:
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
        listed = [item.key async for item in ctx.s3.list_objects(source.as_folder())]
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
        for line in await ctx.store.unreadable_lines(job.batch_job_arn, UNREADABLE_CODES)
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

    await write_batches(job, one_by_one(unprocessed()), ctx)
    for line, record_id, model_input in inputs_of_cut_lines:
        note = f"{line.error_message}; the record is {record_id!r}, its modelInput kept here"
        await ctx.store.keep_input_of_line(
            job.batch_job_arn, line.record_id, model_input, note, ctx.clock.now()
        )
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

"""A finished job's `.jsonl.out` files -> record rows in the store, streamed and batched, then
checked against `manifest.json.out`. Every step is idempotent: running it twice stores each
record once."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from batch_poller.aws.s3 import OverlongLine, S3Uri
from batch_poller.records import (
    NOT_PROCESSED,
    UNREADABLE_CODES,
    overlong_line,
    parse_line,
)
from batch_poller.rows import JobRow, RecordRow, RecordTotals
from batch_poller.unprocessed import store_unprocessed
from batch_poller.writing import FetchError, IngestContext, Interrupted, write_batches

# Raised and taken from here by the tracker, the supervisor and tests.
__all__ = [
    "FetchError",
    "IngestContext",
    "Interrupted",
    "Manifest",
    "check_against_manifest",
    "ingest_job",
]

MANIFEST = "manifest.json.out"


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
    untold = await store_unprocessed(job, ctx) if partial else 0
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
            store_error_input=ctx.settings.store_error_input,
            cost_of=ctx.cost_of,
        )

    pieces = (
        [to_row(n, line) for n, line in lines] async for lines in ctx.s3.line_chunks(uri, limit)
    )
    await write_batches(job, pieces, ctx)


def check_against_manifest(
    totals: RecordTotals, manifest: Manifest, partial: bool, untold: int = 0
) -> None:
    """Stored records must match the manifest; an unreadable line may have been either kind.

    `untold` unreadable lines of a partial job could not be told apart from the unprocessed
    records, so as many records may be stored twice: as the line, and as their kept input.
    """
    unreadable = sum(totals.by_error_code.get(code, 0) for code in UNREADABLE_CODES)
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

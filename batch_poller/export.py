"""A job's stored records out of the store, streamed as JSON lines or CSV: the record id (the
application's own work item), the outcome, the text of the model's answer, tokens and cost.

The text is taken from the model output as each family writes it; an output whose shape is not
known (or an embedding) has none, and is exported whole in JSON lines."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson

from batch_poller.rows import RecordRow

ExportFormat = Literal["jsonl", "csv", "parquet"]
# Rows a parquet file is written in: its row groups.
PARQUET_BATCH = 10_000
# The fields of an exported record, in order: the CSV's columns.
EXPORTED_FIELDS = (
    "batch_job_arn",
    "record_id",
    "outcome",
    "output_text",
    "error_code",
    "error_message",
    "input_tokens",
    "output_tokens",
    "cost",
    "source_file",
    "line_number",
)


def output_text(model_output: str | None) -> str | None:
    """The answer's text: Nova and Converse (output.message.content), Claude (content), Llama
    (generation), Titan text (results[].outputText), Mistral (outputs[].text). None otherwise."""
    if not model_output:
        return None
    try:
        output = orjson.loads(model_output)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(output, dict):
        return None
    message = (
        output.get("output", {}).get("message") if isinstance(output.get("output"), dict) else None
    )
    if isinstance(message, dict):
        return _joined(message.get("content"), "text")
    if isinstance(output.get("content"), list):
        return _joined(output["content"], "text")
    if isinstance(output.get("generation"), str):
        return str(output["generation"])
    if isinstance(output.get("results"), list):
        return _joined(output["results"], "outputText")
    if isinstance(output.get("outputs"), list):
        return _joined(output["outputs"], "text")
    return None


def _joined(parts: Any, key: str) -> str | None:
    if not isinstance(parts, list):
        return None
    texts = [
        part[key] for part in parts if isinstance(part, dict) and isinstance(part.get(key), str)
    ]
    return "".join(texts) if texts else None


def exported(arn: str, row: RecordRow, *, with_output: bool = False) -> dict[str, Any]:
    """One record of the job `arn` as it is exported; `with_output` adds the whole model
    output, parsed."""
    document = {
        "batch_job_arn": arn,
        "record_id": row.record_id,
        "outcome": row.outcome,
        "output_text": output_text(row.model_output),
        "error_code": row.error_code,
        "error_message": row.error_message,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cost": None if row.cost is None else f"{row.cost:f}",
        "source_file": row.source_file,
        "line_number": row.line_number,
    }
    if with_output:
        document["model_output"] = _parsed(row.model_output)
    return document


async def write_export(
    rows: AsyncIterator[tuple[str, RecordRow]], fmt: ExportFormat, write: Callable[[str], Any]
) -> int:
    """Writes the records one at a time (never all in memory); returns how many."""
    count = 0
    if fmt == "csv":
        write(_csv_line(EXPORTED_FIELDS))
    async for arn, row in rows:
        if fmt == "csv":
            document = exported(arn, row)
            values = (document[name] for name in EXPORTED_FIELDS)
            write(_csv_line(tuple("" if v is None else v for v in values)))
        else:
            # JSON lines keep the whole model output too, for what the text leaves out.
            document = exported(arn, row, with_output=True)
            write(orjson.dumps(document, default=_plain).decode() + "\n")
        count += 1
    return count


def _parsed(model_output: str | None) -> Any:
    if model_output is None:
        return None
    try:
        return orjson.loads(model_output)
    except orjson.JSONDecodeError:
        return model_output


def _csv_line(values: tuple[Any, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:f}"
    raise TypeError(f"{type(value).__name__} is not exported")


async def write_parquet(rows: AsyncIterator[tuple[str, RecordRow]], path: Path) -> int:
    """Writes the records as a Parquet file, PARQUET_BATCH rows at a time (for pandas,
    DuckDB, Spark): the exported fields, the model output as JSON text."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError(
            "a parquet export needs pyarrow: pip install 'batch-poller[parquet]'"
        ) from None
    count = 0
    batch: list[dict[str, Any]] = []
    # Counts as integers, the cost at the store's own precision (tables.MONEY), the rest text.
    types = {name: pa.int64() for name in ("input_tokens", "output_tokens", "line_number")}
    types["cost"] = pa.decimal128(18, 8)
    schema = pa.schema([(name, types.get(name, pa.string())) for name in _PARQUET_FIELDS])
    with pq.ParquetWriter(str(path), schema) as writer:
        async for arn, row in rows:
            document = exported(arn, row)
            document["model_output"] = row.model_output
            document["cost"] = row.cost  # a decimal column, not text
            batch.append(document)
            if len(batch) == PARQUET_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                count += len(batch)
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            count += len(batch)
    return count


class ExportError(Exception):
    """An export that cannot be made; the message says why."""


_PARQUET_FIELDS = (*EXPORTED_FIELDS, "model_output")

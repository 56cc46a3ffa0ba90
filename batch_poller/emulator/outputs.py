"""Reads a job's input JSONL from S3 and writes what Bedrock writes: `.jsonl.out` files and
`manifest.json.out` under `{output uri}/{job id}/`."""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from dataclasses import dataclass
from typing import Any

from batch_poller.aws.s3 import S3Uri
from batch_poller.emulator.families import model_output
from batch_poller.emulator.lifecycle import EmulatedJob
from batch_poller.model_families import family_for


class InputProblem(Exception):
    """The input cannot be used; the message says why, as Bedrock's would."""


@dataclass(frozen=True)
class InputRecord:
    record_id: str
    model_input: Any
    line: int


@dataclass
class Manifest:
    totalRecordCount: int = 0
    processedRecordCount: int = 0
    successRecordCount: int = 0
    errorRecordCount: int = 0
    inputTokenCount: int = 0
    outputTokenCount: int = 0


async def find_input_files(s3: Any, input_uri: str) -> tuple[str, list[str]]:
    """The bucket and the keys of every .jsonl input: the object itself, or all under a prefix."""
    uri = S3Uri.parse(input_uri)
    bucket, key = uri.bucket, uri.key
    if key and not key.endswith("/"):
        try:
            await s3.head_object(Bucket=bucket, Key=key)
            return bucket, [key]
        except s3.exceptions.ClientError as error:
            if error.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                raise
    prefix = key if not key or key.endswith("/") else key + "/"
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl"))
    if not keys:
        raise InputProblem(f"no .jsonl input found at {input_uri}")
    return bucket, sorted(keys)


async def read_input(s3: Any, bucket: str, key: str, job_id: str) -> list[InputRecord]:
    response = await s3.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        data = await body.read()
    records = []
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            raise InputProblem(f"{key} line {number}: not valid JSON") from None
        if not isinstance(item, dict) or "modelInput" not in item:
            raise InputProblem(f"{key} line {number}: a record needs a modelInput")
        # Bedrock makes an id up for a record that has none.
        record_id = item.get("recordId") or f"{job_id[:4].upper()}{number:07d}"
        records.append(InputRecord(str(record_id), item["modelInput"], number))
    return records


async def validate_input(s3: Any, job: EmulatedJob) -> int:
    """What Bedrock checks while Validating: the input exists and every line is a record;
    returns how many records there are."""
    bucket, keys = await find_input_files(s3, job.input_uri)
    return sum([len(await read_input(s3, bucket, key, job.job_id)) for key in keys])


async def write_job_output(
    s3: Any, job: EmulatedJob, embedding_dimensions: int, partial: bool
) -> Manifest:
    in_bucket, keys = await find_input_files(s3, job.input_uri)
    destination = S3Uri.parse(job.output_uri)
    out_bucket, out_key = destination.bucket, destination.key
    folder = f"{out_key.rstrip('/')}/{job.job_id}/" if out_key.strip("/") else f"{job.job_id}/"
    manifest = Manifest()
    family = family_for(job.model_id, job.options.invocation_type)
    for key in keys:
        records = await read_input(s3, in_bucket, key, job.job_id)
        manifest.totalRecordCount += len(records)
        rate = job.options.unprocessed_rate if partial else 0.0
        skipped = _pick(records, rate, "skip", job.job_id)
        processed = [r for r in records if r.record_id not in skipped]
        failing = _pick(processed, job.options.error_rate, "error", job.job_id)
        lines: list[str] = []
        for record in processed:
            if record.record_id in failing:
                manifest.errorRecordCount += 1
                lines.append(_error_line(record, manifest.errorRecordCount, job.options.error_code))
                continue
            output, usage = model_output(
                family, job.model_id, record.record_id, record.model_input, embedding_dimensions
            )
            line = {"recordId": record.record_id, "modelInput": record.model_input}
            lines.append(json.dumps({**line, "modelOutput": output}, separators=(",", ":")))
            manifest.successRecordCount += 1
            manifest.inputTokenCount += usage.input_tokens
            manifest.outputTokenCount += usage.output_tokens
        manifest.processedRecordCount += len(processed)
        # Bedrock does not keep the input order.
        random.Random(f"{job.job_id}:{key}").shuffle(lines)
        name = key.rsplit("/", 1)[-1]
        await _upload_lines(s3, out_bucket, f"{folder}{name}.out", lines)
    await s3.put_object(
        Bucket=out_bucket,
        Key=f"{folder}manifest.json.out",
        Body=json.dumps(manifest.__dict__).encode(),
    )
    return manifest


def _pick(records: list[InputRecord], rate: float, salt: str, job_id: str) -> set[str]:
    """Exactly round(n * rate) records, chosen by a hash so that a rerun picks the same ones."""
    if not records or rate <= 0:
        return set()
    count = round(len(records) * rate)
    if salt == "skip":
        # A partial job leaves at least one record out and processes at least one.
        count = min(max(count, 1), max(len(records) - 1, 0))
    ranked = sorted(
        records, key=lambda r: hashlib.sha256(f"{job_id}:{salt}:{r.record_id}".encode()).digest()
    )
    return {r.record_id for r in ranked[:count]}


def _error_line(record: InputRecord, nth_error: int, error_code: int) -> str:
    # Bedrock has been seen writing errorCode both as a number and as a string: every other
    # error line is each, so any two error lines show both.
    code: int | str = error_code if nth_error % 2 == 0 else str(error_code)
    message = _ERROR_MESSAGES.get(error_code, "The request failed.")
    error = {"errorCode": code, "errorMessage": message}
    line = {"recordId": record.record_id, "modelInput": record.model_input, "error": error}
    return json.dumps(line, separators=(",", ":"))


_ERROR_MESSAGES = {
    400: "Malformed input request: the model rejected this record, please reformat.",
    408: "The model did not answer in time.",
    429: "Too many requests, please wait before trying again.",
    500: "An internal server error occurred.",
    503: "The model is not available right now.",
}


async def _upload_lines(s3: Any, bucket: str, key: str, lines: list[str]) -> None:
    # Spooled: a small output stays in memory, a large one goes to disk and up in parts.
    with tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024) as buffer:
        for line in lines:
            buffer.write(line.encode())
            buffer.write(b"\n")
        buffer.seek(0)
        await s3.upload_fileobj(buffer, bucket, key)

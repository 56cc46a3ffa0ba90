"""The campaign's jobs: seven shapes of finished Bedrock job, the objects around them that no
cleanup may touch, and an independent reading of their outputs to compare the store against.

The expected records are read here from the objects themselves, with `json` and a plain split
on newlines, never with the daemon's parser.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from batch_poller.emulator.control import EmulatorControl
from tests.helpers import create_job, list_keys, make_records, put_input, read_object

RECORDS = 40
NOT_PROCESSED = "NOT_PROCESSED"
PARSE_ERROR = "PARSE_ERROR"


@dataclass
class CampaignJob:
    shape: str
    arn: str
    job_id: str
    input_folder: str  # owned: named when the job is tracked
    output_folder: str
    final_status: str  # what the daemon must settle it as
    expected: dict[tuple[str, int], Expected] = field(default_factory=dict)

    @property
    def cleaned(self) -> bool:
        return self.final_status != "FAILED"

    def owns(self, key: str) -> bool:
        return key.startswith((self.input_folder, self.output_folder))


@dataclass(frozen=True)
class Expected:
    """One stored record, keyed by (source file, line number)."""

    outcome: str
    error_code: str | None
    content: Any  # modelOutput, the error message, the raw line or the modelInput
    record_ids: frozenset[str] | None  # None: any id (an unreadable line's id is salvaged)


async def make_jobs(
    bedrock: Any, s3: Any, control: EmulatorControl, bucket: str
) -> list[CampaignJob]:
    """Creates, finishes and (where Bedrock would not write it so) rewrites every shape."""
    output_uri = f"s3://{bucket}/out/"

    async def job(
        shape: str, outcome: str, final: str, tags: dict[str, str] | None = None, parts: int = 1
    ) -> CampaignJob:
        folder = f"in/{shape}/"
        records = make_records(RECORDS, prefix=f"{shape}-")
        for part in range(1, parts + 1):
            name = "input.jsonl" if parts == 1 else f"part-{part}.jsonl"
            # Every part has the same record ids: they collide across files.
            await put_input(s3, f"{folder}{name}", records, bucket=bucket)
        source = f"s3://{bucket}/{folder}" + ("input.jsonl" if parts == 1 else "")
        arn = await create_job(
            bedrock, source, name=f"{bucket}-{shape}", output_uri=output_uri, tags=tags
        )
        await control.finish(arn, outcome)
        job_id = arn.rsplit("/", 1)[-1]
        return CampaignJob(shape, arn, job_id, folder, f"out/{job_id}/", final)

    # Created side by side: setting up an iteration costs less than running it.
    jobs = list(
        await asyncio.gather(
            job("normal", "Completed", "COMPLETED"),
            job("errors", "Completed", "COMPLETED", tags={"emulator:error-rate": "0.3"}),
            job("crlf", "Completed", "COMPLETED"),
            job("damaged", "Completed", "COMPLETED"),
            job("partial", "PartiallyCompleted", "PARTIALLY_COMPLETED"),
            job("failed", "Failed", "FAILED"),
            job("colliding", "Completed", "COMPLETED", parts=2),
        )
    )
    by_shape = {j.shape: j for j in jobs}
    await _rewrite(s3, bucket, by_shape["crlf"], _with_crlf)
    await _rewrite(s3, bucket, by_shape["damaged"], _damaged)
    return jobs


async def _rewrite(s3: Any, bucket: str, job: CampaignJob, change: Any) -> None:
    key = f"{job.output_folder}input.jsonl.out"
    await s3.put_object(Bucket=bucket, Key=key, Body=change(await read_object(s3, key, bucket)))


def _with_crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def _damaged(data: bytes) -> bytes:
    """Line 3 cut in half (its id still readable), line 6 garbage in place of a record."""
    lines = data.split(b"\n")
    lines[2] = lines[2][: len(lines[2]) // 2]
    lines[5] = b"\x00garbage, not a record"
    return b"\n".join(lines)


async def put_bystanders(
    s3: Any, bedrock: Any, control: EmulatorControl, bucket: str, jobs: list[CampaignJob]
) -> None:
    """Objects no cleanup may delete: siblings that share a name prefix with an owned folder,
    a file at the root of the output prefix, and a finished job nobody tracks."""
    for job in jobs:
        await s3.put_object(
            Bucket=bucket,
            Key=f"{job.input_folder.rstrip('/')}x/keep.jsonl",
            Body=b"sibling of an owned input folder\n",
        )
        await s3.put_object(
            Bucket=bucket,
            Key=f"{job.output_folder.rstrip('/')}x/keep.jsonl.out",
            Body=b"sibling of an owned output folder\n",
        )
    await s3.put_object(Bucket=bucket, Key="out/keep.txt", Body=b"beside the job folders\n")
    source = await put_input(s3, "in/untracked/input.jsonl", make_records(5), bucket=bucket)
    arn = await create_job(
        bedrock, source, name=f"{bucket}-untracked", output_uri=f"s3://{bucket}/out/"
    )
    await control.finish(arn, "Completed")


async def read_expected(s3: Any, bucket: str, jobs: list[CampaignJob]) -> int:
    """Fills every job's expected records from its objects as they are now; the total."""
    for job in jobs:
        keys = await list_keys(s3, job.output_folder, bucket)
        outputs = [
            k for k in keys if k.endswith(".jsonl.out") and "/" not in k[len(job.output_folder) :]
        ]
        processed: set[str] = set()
        for key in outputs:
            name = key[len(job.output_folder) :]
            for number, line in _numbered_lines(await read_object(s3, key, bucket)):
                expected = _expected_output(line, name, number)
                job.expected[(name, number)] = expected
                if expected.record_ids is not None:
                    processed |= expected.record_ids
        if job.final_status == "PARTIALLY_COMPLETED":
            for key in await list_keys(s3, job.input_folder, bucket):
                for number, line in _numbered_lines(await read_object(s3, key, bucket)):
                    item = json.loads(line)
                    if item["recordId"] not in processed:
                        job.expected[(key, number)] = Expected(
                            "error",
                            NOT_PROCESSED,
                            item["modelInput"],
                            frozenset([item["recordId"]]),
                        )
    return sum(len(job.expected) for job in jobs)


def _numbered_lines(data: bytes) -> list[tuple[int, bytes]]:
    return [(n, line) for n, line in enumerate(data.split(b"\n"), start=1) if line.strip()]


def _expected_output(line: bytes, name: str, number: int) -> Expected:
    try:
        item = json.loads(line)
    except ValueError:
        item = None
    if isinstance(item, dict) and isinstance(item.get("recordId"), str):
        rid = item["recordId"]
        # A record id taken by an earlier line is kept under one that says where it came from.
        ids = frozenset([rid, f"{rid}@{name}:{number}"])
        if "modelOutput" in item:
            return Expected("ok", None, item["modelOutput"], ids)
        if isinstance(item.get("error"), dict):
            error = item["error"]
            return Expected("error", str(error["errorCode"]), error["errorMessage"], ids)
    # The store keeps a NUL as U+FFFD, the same on SQLite and PostgreSQL.
    raw = line.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return Expected("error", PARSE_ERROR, raw, None)


def stored_matches(expected: Expected, row: dict[str, Any]) -> bool:
    if (row["outcome"], row["error_code"]) != (expected.outcome, expected.error_code):
        return False
    if expected.record_ids is not None and row["record_id"] not in expected.record_ids:
        return False
    if expected.error_code == PARSE_ERROR:
        return bool(row["raw_text"] == expected.content)
    if expected.error_code == NOT_PROCESSED:
        return bool(json.loads(row["model_input"]) == expected.content)
    if expected.outcome == "error":
        return bool(row["error_message"] == expected.content)
    return bool(json.loads(row["model_output"]) == expected.content)

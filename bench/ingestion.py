"""1. Ingestion of a generated `.jsonl.out` from S3 into SQLite, beside the parse-only and
store-only limits and the naive reference."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batch_poller.aws.s3 import LineSplitter
from batch_poller.config import ResultsSettings
from batch_poller.domain import BedrockStatus, JobStatus
from batch_poller.ingest import IngestContext, ingest_job
from batch_poller.records import parse_line
from batch_poller.store import NewJob, RecordRow, open_store
from bench.data import write_output
from bench.measure import measured, median

ARN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/benchmark001"
BUCKET = "bench"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class IngestFigures:
    size_label: str
    record_bytes: int
    records: int
    megabytes: float
    ingest_rps: float
    ingest_mbps: float
    ingest_rss_mb: float
    parse_rps: float
    store_rps: float | None
    naive_rps: float | None

    @property
    def limit(self) -> float:
        return min(x for x in (self.parse_rps, self.store_rps) if x)

    def row(self) -> dict[str, Any]:
        return {
            "size": self.size_label,
            "record": f"{self.record_bytes // 1024} KB",
            "records": self.records,
            "ingest rec/s": round(self.ingest_rps),
            "MB/s": round(self.ingest_mbps, 1),
            "peak RSS growth MB": round(self.ingest_rss_mb, 1),
            "parse-only rec/s": round(self.parse_rps),
            "store-only rec/s": round(self.store_rps) if self.store_rps else "n/a",
            "ingest / slower limit": round(self.ingest_rps / self.limit, 2),
            "naive rec/s": round(self.naive_rps) if self.naive_rps else "n/a",
            "ingest / naive": round(self.ingest_rps / self.naive_rps, 1)
            if self.naive_rps
            else "n/a",
        }


async def bench_ingestion(
    s3: Any, total_bytes: int, record_bytes: int, label: str, runs: int, with_naive: bool
) -> IngestFigures:
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        source = Path(folder) / "records.jsonl.out"
        records = write_output(source, total_bytes, record_bytes)
        size = source.stat().st_size
        await _upload(s3, source, records)
        ingest = [_ingest_in_a_fresh_process(Path(folder) / f"ingest{i}.db") for i in range(runs)]
        parse = [_parse_only(source) for _ in range(runs)]
        store = [await _store_only(source, Path(folder) / f"store{i}.db") for i in range(runs)]
        naive = [await _naive(s3, Path(folder) / "naive.db")] if with_naive else []
    ingest_seconds = median([s for s, _ in ingest])
    return IngestFigures(
        size_label=label,
        record_bytes=record_bytes,
        records=records,
        megabytes=size / 1e6,
        ingest_rps=records / ingest_seconds,
        ingest_mbps=size / 1e6 / ingest_seconds,
        ingest_rss_mb=max(r for _, r in ingest) / 1e6,
        parse_rps=records / median(parse),
        store_rps=records / median(store) if store else None,
        naive_rps=records / median(naive) if naive else None,
    )


async def _upload(s3: Any, source: Path, records: int) -> None:
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        await s3.create_bucket(Bucket=BUCKET)
    folder = "out/benchmark001/"
    with source.open("rb") as body:
        await s3.upload_fileobj(body, BUCKET, folder + "records.jsonl.out")
    manifest = {
        "totalRecordCount": records,
        "processedRecordCount": records,
        "successRecordCount": records,
        "errorRecordCount": 0,
        "inputTokenCount": records * 120,
        "outputTokenCount": records * 12,
    }
    await s3.put_object(Bucket=BUCKET, Key=folder + "manifest.json.out", Body=json.dumps(manifest))


def _ingest_in_a_fresh_process(database: Path) -> tuple[float, int]:
    """Each ingest runs in a new process, so its RSS growth is its own, not the leftovers of
    the steps before it."""
    from bench.runtime import endpoints

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.ingestion",
            endpoints().bedrock,
            endpoints().s3,
            str(database),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, growth = result.stdout.split()
    return float(seconds), int(growth)


async def _ingest(database: Path) -> tuple[float, int]:
    """The project's path: S3 stream -> parse -> batched upserts, checked against the manifest."""
    from bench.runtime import bench_s3

    store = await open_store(f"sqlite:///{database}")
    await store.track_job(
        NewJob(
            arn=ARN,
            bedrock_status=BedrockStatus.COMPLETED,
            status=JobStatus.IN_PROGRESS,
            output_s3_prefix=f"s3://{BUCKET}/out/benchmark001/",
        ),
        NOW,
    )
    # Leased on the clock the ingest writes by, as a pass would lease it.
    (job,) = await store.leases.claim(1, _Clock().now(), check_interval_seconds=0, only=ARN)
    async with bench_s3() as s3:
        context = IngestContext(
            s3=s3,
            store=store,
            clock=_Clock(),
            settings=ResultsSettings(),
            stopping=asyncio.Event(),
            cost_of=None,
        )
        with measured() as sample:
            totals, _ = await ingest_job(job, False, context)
    await store.close()
    assert totals.ok == totals.total
    return sample.seconds, sample.peak_rss_growth


def _parse_only(source: Path) -> float:
    """The same lines, parsed from memory by the project's parser: the parse-only limit."""
    data = source.read_bytes()
    splitter = LineSplitter(16 * 1024 * 1024)
    with measured() as sample:
        for number, line in splitter.feed(data):
            parse_line(line, source_file="r", line_number=number, store_model_input=False)  # type: ignore[arg-type]
    return sample.seconds


async def _store_only(source: Path, database: Path) -> float:
    """The same rows, built in memory beforehand, written in large batches: the store limit."""
    splitter = LineSplitter(16 * 1024 * 1024)
    rows: list[RecordRow] = [
        parse_line(line, source_file="r", line_number=n, store_model_input=False)  # type: ignore[arg-type]
        for n, line in splitter.feed(source.read_bytes())
    ]
    store = await open_store(f"sqlite:///{database}")
    finished = NewJob(arn=ARN, bedrock_status=BedrockStatus.COMPLETED, status=JobStatus.IN_PROGRESS)
    await store.track_job(finished, NOW)
    await store.leases.claim(1, NOW, check_interval_seconds=0, only=ARN)
    with measured() as sample:
        for start in range(0, len(rows), 2000):
            await store.write_records(ARN, rows[start : start + 2000], NOW)
    await store.close()
    return sample.seconds


async def _naive(s3: Any, database: Path) -> float:
    """The seed's style: the whole object in memory, json.loads, insert and commit per row."""
    with measured() as sample:
        response = await s3.get_object(Bucket=BUCKET, Key="out/benchmark001/records.jsonl.out")
        async with response["Body"] as body:
            data = await body.read()
        db = sqlite3.connect(database)
        db.execute(
            "CREATE TABLE records"
            " (record_id TEXT PRIMARY KEY, output TEXT, tokens_in INT, tokens_out INT)"
        )
        for raw in data.splitlines():
            item = json.loads(raw)
            usage = item["modelOutput"]["usage"]
            db.execute(
                "INSERT INTO records VALUES (?, ?, ?, ?)",
                (
                    item["recordId"],
                    json.dumps(item["modelOutput"]),
                    usage["inputTokens"],
                    usage["outputTokens"],
                ),
            )
            db.commit()
        db.close()
    return sample.seconds


if __name__ == "__main__":
    import bench.runtime
    from batch_poller.emulator.server import Endpoints

    bench.runtime.ENDPOINTS = Endpoints(sys.argv[1], sys.argv[2])
    seconds, growth = asyncio.run(_ingest(Path(sys.argv[3])))
    print(seconds, growth)

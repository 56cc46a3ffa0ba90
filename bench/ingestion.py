"""1. Ingestion of a generated `.jsonl.out` from S3 into SQLite and PostgreSQL, beside the
machine's limits (parse-only: orjson over the same lines; store-only: the same rows prebuilt as
tuples and written by the plain driver, sqlite3 executemany or PostgreSQL COPY) and the naive
reference."""

from __future__ import annotations

import asyncio
import contextlib
import json
import operator
import os
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from batch_poller.aws.s3 import LineSplitter
from batch_poller.config import ResultsSettings
from batch_poller.domain import BedrockStatus, JobStatus
from batch_poller.ingest import IngestContext, ingest_job
from batch_poller.records import parse_line
from batch_poller.store import JobStore, NewJob, RecordRow, open_store
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


PG_URL = os.environ.get("BATCH_POLLER_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
COPY_BATCH = 20_000  # rows a transaction for the store-only limits: large, as the limit allows


@dataclass
class IngestFigures:
    database: str
    size_label: str
    record_bytes: int
    records: int
    megabytes: float
    ingest_rps: float
    ingest_mbps: float
    ingest_rss_mb: float
    ingest_cpu_us: float  # the ingesting process's CPU a record, all its threads
    parse_rps: float
    store_rps: float | None
    naive_rps: float | None

    @property
    def limit(self) -> float:
        return min(x for x in (self.parse_rps, self.store_rps) if x)

    def row(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "size": self.size_label,
            "record": f"{self.record_bytes // 1024} KB",
            "records": self.records,
            "ingest rec/s": round(self.ingest_rps),
            "MB/s": round(self.ingest_mbps, 1),
            "peak RSS growth MB": round(self.ingest_rss_mb, 1),
            "CPU µs/record": round(self.ingest_cpu_us, 1),
            "parse-only (orjson) rec/s": round(self.parse_rps),
            "store-only (driver) rec/s": round(self.store_rps) if self.store_rps else "n/a",
            "ingest / min(parse, store)": round(self.ingest_rps / self.limit, 2),
            "naive rec/s": round(self.naive_rps) if self.naive_rps else "n/a",
            "ingest / naive": round(self.ingest_rps / self.naive_rps, 1)
            if self.naive_rps
            else "n/a",
        }


async def bench_ingestion(
    s3: Any,
    total_bytes: int,
    record_bytes: int,
    label: str,
    runs: int,
    with_naive: bool,
    databases: tuple[str, ...] = ("sqlite", "postgresql"),
) -> list[IngestFigures]:
    """One row of figures for each database, from the same generated file."""
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        source = Path(folder) / "records.jsonl.out"
        records = write_output(source, total_bytes, record_bytes)
        size = source.stat().st_size
        await _upload(s3, source, records)
        parse = [_parse_only(source) for _ in range(runs)]
        naive = [await _naive(s3, Path(folder) / "naive.db")] if with_naive else []
        for database in databases:
            url = f"sqlite:///{Path(folder) / 'ingest.db'}" if database == "sqlite" else PG_URL
            ingest = [_ingest_in_a_fresh_process(url, Path(folder), i) for i in range(runs)]
            store = [await _store_only(source, url, Path(folder), i) for i in range(runs)]
            ingest_seconds = median([s for s, _, _ in ingest])
            figures.append(
                IngestFigures(
                    database=database,
                    size_label=label,
                    record_bytes=record_bytes,
                    records=records,
                    megabytes=size / 1e6,
                    ingest_rps=records / ingest_seconds,
                    ingest_mbps=size / 1e6 / ingest_seconds,
                    ingest_rss_mb=max(r for _, r, _ in ingest) / 1e6,
                    ingest_cpu_us=median([c for _, _, c in ingest]) / records * 1e6,
                    parse_rps=records / median(parse),
                    store_rps=records / median(store),
                    naive_rps=records / median(naive) if naive else None,
                )
            )
    return figures


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


def _ingest_in_a_fresh_process(url: str, folder: Path, run: int) -> tuple[float, int, float]:
    """Each ingest runs in a new process, so its RSS growth is its own, not the leftovers of
    the steps before it; each into a new database (a new file, a new schema)."""
    from bench.runtime import endpoints

    if url.startswith("sqlite"):
        url = f"sqlite:///{folder / f'ingest{run}.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "bench.ingestion", endpoints().bedrock, endpoints().s3, url],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, growth, cpu = result.stdout.split()
    return float(seconds), int(growth), float(cpu)


@contextlib.asynccontextmanager
async def _fresh_store(url: str) -> AsyncIterator[JobStore]:
    """A store on an empty database: a new SQLite file, or a new PostgreSQL schema, dropped
    afterwards."""
    schema = None if url.startswith("sqlite") else f"bench_{uuid.uuid4().hex[:12]}"
    if schema is not None:
        connection = await asyncpg.connect(url)
        await connection.execute(f"CREATE SCHEMA {schema}")
        await connection.close()
    store = await open_store(url, schema=schema)
    try:
        yield store
    finally:
        await store.close()
        if schema is not None:
            connection = await asyncpg.connect(url)
            await connection.execute(f"DROP SCHEMA {schema} CASCADE")
            await connection.close()


async def _ingest(url: str) -> tuple[float, int, float]:
    """The project's path: S3 stream -> parse -> batched upserts, checked against the manifest."""
    from bench.runtime import bench_s3

    async with _fresh_store(url) as store:
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
    assert totals.ok == totals.total
    return sample.seconds, sample.peak_rss_growth, sample.cpu_seconds


def _parse_only(source: Path) -> float:
    """The same lines, each parsed by orjson from memory: the machine's parse limit."""
    lines = source.read_bytes().splitlines()
    with measured() as sample:
        for line in lines:
            orjson.loads(line)
    return sample.seconds


async def _store_only(source: Path, url: str, folder: Path, run: int) -> float:
    """The same rows, built beforehand as the driver takes them, written by the plain driver
    into the daemon's own table (schema, indexes, constraints): sqlite3's executemany in WAL
    with synchronous=NORMAL, or PostgreSQL's COPY; large transactions. The machine's store
    limit."""
    splitter = LineSplitter(16 * 1024 * 1024)
    stamp = datetime.now(UTC)
    rows = [
        parse_line(line, source_file="r", line_number=n, store_model_input=False)  # type: ignore[arg-type]
        for n, line in splitter.feed(source.read_bytes())
    ]
    if url.startswith("sqlite"):
        url = f"sqlite:///{folder / f'store{run}.db'}"
    async with _fresh_store(url) as store:
        finished = NewJob(
            arn=ARN, bedrock_status=BedrockStatus.COMPLETED, status=JobStatus.IN_PROGRESS
        )
        await store.track_job(finished, NOW)
        if url.startswith("sqlite"):
            path = url.removeprefix("sqlite:///")
            stored_at = stamp.replace(tzinfo=None).isoformat(sep=" ")
            tuples = [(ARN, *_VALUES(row), stored_at) for row in rows]
            return _sqlite_executemany(path, tuples)
        tuples = [(ARN, *_VALUES(row), stamp) for row in rows]
        return await _postgres_copy(url, store, tuples)


_COLUMNS = ("batch_job_arn", *RecordRow._fields, "stored_at")
_VALUES = operator.attrgetter(*_COLUMNS[1:-1])


def _sqlite_executemany(path: str, tuples: list[tuple[Any, ...]]) -> float:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    insert = (
        f"INSERT INTO batch_records ({', '.join(_COLUMNS)})"
        f" VALUES ({', '.join('?' * len(_COLUMNS))})"
    )
    with measured() as sample:
        for start in range(0, len(tuples), COPY_BATCH):
            with connection:
                connection.executemany(insert, tuples[start : start + COPY_BATCH])
    connection.close()
    return sample.seconds


async def _postgres_copy(url: str, store: JobStore, tuples: list[tuple[Any, ...]]) -> float:
    async with store.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        with measured() as sample:
            for start in range(0, len(tuples), COPY_BATCH):
                async with driver.transaction():
                    await driver.copy_records_to_table(
                        "batch_records",
                        records=tuples[start : start + COPY_BATCH],
                        columns=list(_COLUMNS),
                    )
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
    seconds, growth, cpu = asyncio.run(_ingest(sys.argv[3]))
    print(seconds, growth, cpu)

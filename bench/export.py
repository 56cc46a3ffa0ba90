"""5. Export: a job's stored records streamed out as JSON lines, in a fresh process so that its
peak RSS growth is the export's own. The records are written to the store beforehand."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batch_poller.domain import BedrockStatus, JobStatus
from batch_poller.export import write_export
from batch_poller.rows import NewJob, RecordRow
from batch_poller.store import RecordScope, open_store
from bench.measure import measured

ARN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/benchexport1"
MB = 1024 * 1024


async def bench_export(records: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        database = Path(folder) / "export.db"
        await _fill(database, records)
        seconds, growth, count = _export_in_a_fresh_process(database)
    assert int(count) == records, f"exported {count} of {records} records"
    return {
        "records": records,
        "seconds": round(float(seconds), 2),
        "records/s": round(records / float(seconds)),
        "peak RSS growth MB": round(int(growth) / MB, 1),
    }


def _export_in_a_fresh_process(database: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.export", str(database)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def _sink() -> Any:
    return open(os.devnull, "w")


async def _fill(database: Path, records: int) -> None:
    now = datetime.now(UTC)
    store = await open_store(f"sqlite:///{database}")
    finished = NewJob(arn=ARN, bedrock_status=BedrockStatus.COMPLETED, status=JobStatus.IN_PROGRESS)
    await store.track_job(finished, now)
    await store.leases.claim(1, now, check_interval_seconds=0, only=ARN)
    output = '{"output":{"message":{"content":[{"text":"%s"}]}}}' % ("x" * 900)
    for start in range(0, records, 2000):
        rows = [
            RecordRow(record_id=f"r{n:08d}", outcome="ok", model_output=output, input_tokens=9)
            for n in range(start, min(start + 2000, records))
        ]
        await store.write_records(ARN, rows, now)
    await store.close()


async def _export(database: Path) -> tuple[float, int, int]:
    store = await open_store(f"sqlite:///{database}")
    with _sink() as sink, measured() as sample:
        count = await write_export(store.stream_records(RecordScope(job=ARN)), "jsonl", sink.write)
    await store.close()
    return sample.seconds, sample.peak_rss_growth, count


if __name__ == "__main__":
    seconds, growth, count = asyncio.run(_export(Path(sys.argv[1])))
    print(seconds, growth, count)

"""`python -m bench [--smoke]`: the figures of docs/performance.md, measured side by side on
this machine against the moto server and the Bedrock emulator on loopback."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import bench.runtime
from batch_poller.emulator.process import EmulatorProcess
from bench.cleanup import bench_cleanup
from bench.events import bench_events
from bench.export import bench_export
from bench.idle import bench_idle
from bench.ingestion import bench_ingestion
from bench.many_jobs import bench_many_jobs
from bench.passes import bench_pass
from bench.runtime import client

MB = 1024 * 1024
SMOKE = {
    "ingestion": [(10 * MB, 1024, "10 MB", True)],
    "passes": [10],
    "cleanup": 1000,
    "idle": (100, 5.0),
    "export": 5_000,
    "events": 10,
    "many_jobs": (20, 200, [1, 8]),
    "runs": 1,
}
FULL = {
    "ingestion": [
        (10 * MB, 1024, "10 MB", True),
        (10 * MB, 20 * 1024, "10 MB", True),
        (100 * MB, 1024, "100 MB", False),
        (100 * MB, 20 * 1024, "100 MB", False),
        (1024 * MB, 1024, "1 GB", False),
    ],
    "passes": [10, 100, 1000],
    "cleanup": 10_000,
    "idle": (100, 60.0),
    "export": 100_000,
    "events": 100,
    "many_jobs": (500, 200, [1, 2, 4, 8, 16, 32]),
    "runs": 3,
}


async def run(plan: dict[str, Any], console: Console) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    async with client("s3") as s3:
        results["ingestion"] = []
        for total, record, label, naive in plan["ingestion"]:
            databases = ("sqlite", "postgresql") if record <= 1024 else ("sqlite",)
            figures = await bench_ingestion(
                s3, total, record, label, plan["runs"], naive, databases
            )
            results["ingestion"] += [f.row() for f in figures]
            _show(console, "1. Ingestion, S3 to the database (medians)", results["ingestion"])
    results["passes"] = [await bench_pass(jobs, 50) for jobs in plan["passes"]]
    _show(console, "2. One pass over in-progress jobs, 50 ms per Bedrock call", results["passes"])
    results["cleanup"] = [await bench_cleanup(plan["cleanup"])]
    _show(console, "3. Cleanup", results["cleanup"])
    results["idle"] = [await bench_idle(*plan["idle"])]
    _show(console, "4. Idle daemon", results["idle"])
    results["export"] = [await bench_export(plan["export"])]
    _show(console, "5. Export of a job's records as JSON lines", results["export"])
    results["events"] = await bench_events(plan["events"])
    _show(console, "6. Events against polling alone", results["events"])
    results["many_jobs"] = await bench_many_jobs(*plan["many_jobs"])
    _show(console, "7. Many jobs finished at once, stored by one pass", results["many_jobs"])
    return results


def _show(console: Console, title: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="the smallest sizes, one run each")
    parser.add_argument("--output", default="bench/results.json", help="where the figures go")
    args = parser.parse_args()
    console = Console(width=160)
    emulator = EmulatorProcess.start()
    bench.runtime.ENDPOINTS = emulator.endpoints
    try:
        results = asyncio.run(run(SMOKE if args.smoke else FULL, console))
    finally:
        emulator.stop()
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"figures written to {args.output}")


if __name__ == "__main__":
    main()

"""The benchmark's smallest size, as a smoke test: it runs to the end and its counts add up.
No timing is asserted here; the figures live in docs/performance.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_runs_at_its_smallest_size(tmp_path: Path) -> None:
    output = tmp_path / "results.json"

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(output.read_text())
    sqlite, postgresql = figures["ingestion"]
    assert (sqlite["database"], postgresql["database"]) == ("sqlite", "postgresql")
    for ingestion in (sqlite, postgresql):
        assert ingestion["records"] == 10240
        assert ingestion["naive rec/s"] != "n/a"
        assert ingestion["store-only (driver) rec/s"] != "n/a"
    passes = figures["passes"][0]
    assert (passes["calls, listing"], passes["calls, Get per job"]) == (1, 10)
    cleanup = figures["cleanup"][0]
    assert cleanup["DeleteObjects"] == 1 and cleanup["requests, batched"] == 2
    assert figures["idle"][0]["jobs tracked"] == 100
    assert figures["export"][0]["records"] == 5000  # every record exported, checked in bench
    polling, evented = figures["events"]
    # A pass an interval for an hour, each one listing: 60 with polling, 12 with events.
    calls = "Bedrock calls per hour, 10 jobs in progress"
    assert (polling[calls], evented[calls]) == (60, 12)
    # Every job stored by the one pass, at each concurrency (the bench checks the statuses).
    assert [row["max_concurrent_jobs"] for row in figures["many_jobs"]] == [1, 8]
    assert all(row["jobs"] == 20 for row in figures["many_jobs"])

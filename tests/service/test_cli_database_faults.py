"""The CLI's commands beside a busy database: reads pass through another writer's SQLite lock,
and what cannot pass fails with one line naming the operation, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from batch_poller.emulator.server import Endpoints
from tests.processes import write_config
from tests.service.test_database_faults import FAST_DATABASE, _track, sqlite_write_lock


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_poller", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
    )


def _failed_with_one_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "SQL" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, result.stderr
    assert all(word in lines[0] for word in words), lines[0]


async def test_reads_pass_through_another_writers_lock_and_writes_fail_in_one_line(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any
) -> None:
    database = tmp_path / "daemon.db"
    config = write_config(
        tmp_path,
        endpoints,
        database={"url": f"sqlite:///{database}", **FAST_DATABASE},
        logging={"format": "json", "level": "ERROR"},
    )
    arn = await _track(config, bedrock, s3, "busy")
    other = await _track(config, bedrock, s3, "other")

    with sqlite_write_lock(database):
        listed = _cli(config, "jobs", "--json")
        table = _cli(config, "jobs")
        shown = _cli(config, "show", arn, "--json")
        upgraded = _cli(config, "db", "upgrade")
        tracked = _cli(config, "track", other)
        processed = _cli(config, "process-completed")

    assert listed.returncode == 0, listed.stderr
    assert {json.loads(line)["batch_job_arn"] for line in listed.stdout.splitlines()} == {
        arn,
        other,
    }
    assert table.returncode == 0 and "busy" in table.stdout, table.stderr
    assert shown.returncode == 0 and json.loads(shown.stdout)["batch_job_arn"] == arn
    assert upgraded.returncode == 0 and "database schema at version" in upgraded.stdout
    _failed_with_one_line(tracked, "track failed", "database is locked")
    _failed_with_one_line(processed, "process-completed failed", "database is locked")

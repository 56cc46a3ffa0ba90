"""`batch-poller status`, `pause`, `resume`, `process-completed --remote` and
`cleanup JOB --remote`, run against a real daemon process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from batch_poller.app import open_runtime
from batch_poller.config import load_settings
from batch_poller.emulator.server import Endpoints
from batch_poller.tracking import track_jobs
from tests.helpers import BUCKET, create_job, make_records, put_input
from tests.http.conftest import TOKEN
from tests.processes import running, write_config


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _passes(config: Path) -> int:
    answer = _cli(config, "status", "--json")
    return int(json.loads(answer.stdout)["passes"]) if answer.returncode == 0 else 0


def _passes(config: Path) -> int:
    answer = _cli(config, "status", "--json")
    return int(json.loads(answer.stdout)["passes"]) if answer.returncode == 0 else 0


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_poller", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


async def test_the_remote_commands_steer_a_running_daemon(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = write_config(
        tmp_path,
        endpoints,
        poller={"interval_seconds": 3600},
        cleanup={"enabled": False},
        http={"port": _free_port(), "admin_token_file": str(token_file)},
    )
    # Held where it is until the test finishes it, however long the daemon takes to start.
    await control.freeze_clock()
    uri = await put_input(s3, "remote/input.jsonl", make_records(4))
    arn = await create_job(bedrock, uri)
    async with open_runtime(load_settings(str(config))) as rt:
        await track_jobs(rt, [arn], f"s3://{BUCKET}/remote/")

    with running(config) as daemon:
        daemon.wait_for(lambda: _passes(config) >= 1, "a first pass")
        status = json.loads(_cli(config, "status", "--json").stdout)
        readable = _cli(config, "status").stdout
        paused = json.loads(_cli(config, "pause", "--json").stdout)
        await control.finish(arn, "Completed")  # after the first pass saw it running
        processed = json.loads(_cli(config, "process-completed", "--remote", "--json").stdout)
        resumed = _cli(config, "resume")
        cleaned = _cli(config, "cleanup", arn, "--remote")
        again = _cli(config, "cleanup", arn, "--remote", "--json")
        said_again = _cli(config, "cleanup", arn, "--remote")
        unknown = _cli(config, "cleanup", "abcdefabcdef", "--remote")

    assert status["state"] == "running" and status["version"]
    # The daemon names itself and lists itself among the replicas, with its last pass.
    replica = status["replica"]
    assert replica.split(":")[1] == str(daemon.process.pid)
    assert [(r["owner"], r["role"]) for r in status["replicas"]] == [(replica, "daemon")]
    assert status["replicas"][0]["last_pass_at"] is not None
    assert f"{replica} (daemon): last pass 20" in readable
    # Every entry of its log names it, those logged by its signal handlers included.
    entries = daemon.events()
    assert {"stopping", "daemon_stopped"} <= {entry["event"] for entry in entries}
    assert [e for e in entries if e.get("replica") != replica] == []
    assert paused["state"] == "paused"
    assert resumed.returncode == 0 and resumed.stdout.startswith("polling running: ")
    assert resumed.stdout.count("\n") == 1  # one line
    assert (processed["fetched"], processed["cleaned"]) == (1, 0)
    assert cleaned.returncode == 0 and "bytes freed" in cleaned.stdout
    assert json.loads(again.stdout)["cleanup"] == "done"
    assert f"{arn}: already cleaned up at 20" in said_again.stdout
    assert "bytes freed" not in said_again.stdout
    assert unknown.returncode == 1 and "no tracked job 'abcdefabcdef'" in unknown.stderr


def test_a_daemon_that_is_not_running_is_reported_clearly(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[http]\nport = {_free_port()}\n")

    result = _cli(config, "status")

    assert result.returncode == 1
    assert "cannot reach the daemon at http://127.0.0.1:" in result.stderr

"""`batch-poller status`, `pause`, `resume`, `process-completed --remote` and
`cleanup JOB --remote`, run against a real daemon process, a server that is not the daemon, and
one that never answers."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from batch_poller import remote
from batch_poller.app import open_runtime
from batch_poller.cli_errors import CommandError
from batch_poller.config import Settings, load_settings
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


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_poller", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def _daemon_config(tmp_path: Path, endpoints: Endpoints) -> Path:
    """A daemon that passes once an hour, cleans nothing, and serves the API with the token."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    return write_config(
        tmp_path,
        endpoints,
        poller={"interval_seconds": 3600},
        cleanup={"enabled": False},
        http={"port": _free_port(), "admin_token_file": str(token_file)},
    )


async def test_the_remote_commands_steer_a_running_daemon(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    config = _daemon_config(tmp_path, endpoints)
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


async def test_a_job_is_cleaned_up_remotely_by_its_name(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    config = _daemon_config(tmp_path, endpoints)
    await control.freeze_clock()
    # A name with every character a Bedrock name may hold besides letters and digits.
    name = "nightly.v1+eval-2"
    uri = await put_input(s3, "named/input.jsonl", make_records(3))
    arn = await create_job(bedrock, uri, name=name)
    async with open_runtime(load_settings(str(config))) as rt:
        await track_jobs(rt, [arn], f"s3://{BUCKET}/named/")
    await control.finish(arn, "Completed")

    with running(config) as daemon:
        daemon.wait_for(lambda: _passes(config) >= 1, "a first pass")
        # The first pass or this one has stored the results: the job can be cleaned up.
        assert _cli(config, "process-completed", "--remote").returncode == 0
        cleaned = _cli(config, "cleanup", name, "--remote")
        again = _cli(config, "cleanup", name, "--remote", "--json")

    assert cleaned.returncode == 0, cleaned.stderr
    assert cleaned.stdout.startswith(f"{arn}: cleaned, ") and "bytes freed" in cleaned.stdout
    assert json.loads(again.stdout)["batch_job_arn"] == arn


class Impostor:
    """Another HTTP server on the daemon's port: every request gets the same answer."""

    def __init__(self, status: int, content_type: str, body: bytes) -> None:
        self.paths: list[str] = []
        impostor = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                impostor.paths.append(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])

    def config(self, folder: Path) -> Path:
        config = folder / "config.toml"
        config.write_text(f"[http]\nport = {self.port}\n")
        return config


@pytest.fixture
def impostor(request: pytest.FixtureRequest) -> Iterator[Impostor]:
    server = Impostor(*request.param)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


HTML = (200, "text/html", b"<!doctype html><title>Another app</title>")
REMOTE_COMMANDS = [
    ("status",),
    ("status", "--json"),
    ("pause",),
    ("resume",),
    ("process-completed", "--remote"),
    ("cleanup", "abcdefabcdef", "--remote"),
]


def _one_line_not_the_daemon(result: subprocess.CompletedProcess[str], port: int, why: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"batch-poller: the answer from http://127.0.0.1:{port}/api/")
    assert result.stderr.endswith(f" is not the daemon's ({why}): is [http] port right?\n")


@pytest.mark.parametrize("impostor", [HTML], indirect=True)
@pytest.mark.parametrize("command", REMOTE_COMMANDS)
def test_another_server_answering_html_is_not_taken_for_the_daemon(
    impostor: Impostor, tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = _cli(impostor.config(tmp_path), *command)

    _one_line_not_the_daemon(result, impostor.port, "not JSON")


@pytest.mark.parametrize(
    ("impostor", "command", "why"),
    [
        ((200, "application/json", b'{"hello": "world"}'), ("status",), "no 'state'"),
        ((200, "application/json", b'{"state": "on"}'), ("pause",), "no 'jobs_pending'"),
        ((200, "application/json", b"[1, 2]"), ("resume",), "not a JSON object"),
        ((200, "application/json", b"{}"), ("process-completed", "--remote"), "no 'report'"),
        (
            (200, "application/json", b'{"id": 1}'),
            ("cleanup", "job-1", "--remote"),
            "no 'batch_job_arn'",
        ),
        ((404, "text/html", b"<h1>Not Found</h1>"), ("status",), "not JSON"),
        ((404, "application/json", b'{"message": "no"}'), ("status",), "404 without a detail"),
        ((200, "application/json", b"[" * 100_000), ("status",), "not JSON"),
        (
            (200, "application/json", b'{"state": "on", "replicas": [1]}'),
            ("status",),
            "not the values it answers",
        ),
        (
            (200, "application/json", b'{"report": [1]}'),
            ("process-completed", "--remote"),
            "not the values it answers",
        ),
        (
            (
                200,
                "application/json",
                b'{"batch_job_arn": "a", "cleanup": "pending", "cleanup_completed_at": null,'
                b' "bytes_freed": "many"}',
            ),
            ("cleanup", "job-1", "--remote"),
            "not the values it answers",
        ),
    ],
    indirect=["impostor"],
)
def test_json_without_what_the_daemon_answers_is_not_taken_for_the_daemon(
    impostor: Impostor, tmp_path: Path, command: tuple[str, ...], why: str
) -> None:
    result = _cli(impostor.config(tmp_path), *command)

    _one_line_not_the_daemon(result, impostor.port, why)


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (lambda settings: remote.remote_status(settings, as_json=True), "status"),
        (lambda settings: remote.remote_pause(settings, resume=False, as_json=True), "stop"),
        (lambda settings: remote.remote_pause(settings, resume=True, as_json=True), "start"),
    ],
)
async def test_a_daemon_that_never_answers_is_given_up_on(
    monkeypatch: pytest.MonkeyPatch, command: Any, path: str
) -> None:
    # What the commands wait, shortened here: they are answered at once by a daemon alive.
    assert remote.ANSWER_SECONDS == 30
    monkeypatch.setattr(remote, "ANSWER_SECONDS", 0.3)
    with socket.socket() as silent:
        # The kernel accepts the connections; nothing ever reads them or answers.
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with pytest.raises(CommandError) as refused:
            await asyncio.wait_for(command(Settings(http={"port": port})), 10)

    assert str(refused.value) == (
        f"the daemon at http://127.0.0.1:{port}/api/batch/poller/{path} did not answer within 0.3 s"
    )


@pytest.mark.parametrize("impostor", [HTML], indirect=True)
@pytest.mark.parametrize(
    "job",
    [
        "x?force=true",
        "../poller/stop",
        "..",
        ".",
        "job-1\n",
        "a b",
        "job#1",
        "_name",
        "",
        "arn:aws-x/../..:bedrock:us-east-1:123456789012:model-invocation-job/abcdefabcdef",
    ],
)
def test_cleanup_remote_refuses_what_is_no_job_before_asking_the_daemon(
    impostor: Impostor, tmp_path: Path, job: str
) -> None:
    result = _cli(impostor.config(tmp_path), "cleanup", job, "--remote")

    assert result.returncode == 1
    assert result.stderr == (
        f"batch-poller: {job!r} is not a job ARN, job id or job name "
        "(letters, digits and + - . _)\n"
    )
    assert impostor.paths == []


def test_a_job_path_keeps_an_arn_whole_and_encodes_a_name() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefabcdef"

    assert remote.job_path(arn) == f"/api/batch/jobs/{arn}"
    assert remote.job_path("abcdefabcdef") == "/api/batch/jobs/abcdefabcdef"
    assert remote.job_path("nightly.v1+eval_2") == "/api/batch/jobs/nightly.v1%2Beval_2"

"""`batch-poller emulate` as a user runs it: endpoints on stdout, stops on SIGTERM or SIGINT;
what it and `batch-poller demo` cannot use is refused in one line."""

from __future__ import annotations

import errno
import os
import signal
import socket
from typing import Any

import aioboto3
import pytest

from batch_poller.cli import _parser
from batch_poller.emulator.process import EmulatorProcess
from tests.processes import run_command


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_emulate_prints_endpoints_serves_and_stops_on_a_signal(signum: int) -> None:
    emulator = EmulatorProcess.start()
    try:
        endpoints = emulator.endpoints
        assert endpoints.bedrock.startswith("http://127.0.0.1:")
        assert endpoints.s3.startswith("http://127.0.0.1:")
        assert endpoints.bedrock != endpoints.s3
        session = aioboto3.Session(region_name="us-east-1")
        async with (
            session.client("bedrock", endpoint_url=endpoints.bedrock) as bedrock,
            session.client("s3", endpoint_url=endpoints.s3) as s3,
        ):
            listed: Any = await bedrock.list_model_invocation_jobs()
            buckets: Any = await s3.list_buckets()
        assert listed["invocationJobSummaries"] == []
        assert buckets["Buckets"] == []
    finally:
        emulator.process.send_signal(signum)
        code = emulator.process.wait(timeout=15)

    assert code == 0


@pytest.mark.parametrize(
    "args",
    [
        ("emulate", "--port", "99999"),
        ("emulate", "--port", "-1"),
        ("emulate", "--port=-1"),
        ("emulate", "--port", "65536"),
        ("emulate", "--port", "\uff18\uff10"),  # fullwidth digits, which int() takes
        ("emulate", "--s3-port", "99999"),
        ("emulate", "--s3-port", "-1"),
        ("demo", "--port", "99999"),
        ("demo", "--port", "-1"),
    ],
)
def test_a_port_out_of_range_is_a_usage_error(args: tuple[str, ...]) -> None:
    result = run_command(*args)

    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is not a port: 0 to 65535" in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--events-queue", "bad name!"), "'bad name!' is not an SQS queue name"),
        (("--events-queue", ""), "'' is not an SQS queue name"),
        (("--events-queue", "q" * 81), "is not an SQS queue name"),
        (("--events-queue", "q" * 76 + ".fifo"), "is not an SQS queue name"),
        (("--events-queue", "events.txt"), "'events.txt' is not an SQS queue name"),
        (("--host", "nosuch.invalid"), "'nosuch.invalid' is not an IP address or localhost"),
        (("--host", "127.0.0.1 "), "is not an IP address or localhost"),
    ],
)
def test_emulate_refuses_a_queue_name_or_host_it_cannot_use(
    args: tuple[str, ...], words: str
) -> None:
    result = run_command("emulate", *args)

    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert words in result.stderr


@pytest.mark.parametrize(
    ("args", "value"),
    [
        (("--events-queue", "batch-events_1"), "batch-events_1"),
        (("--events-queue", "q" * 80), "q" * 80),
        (("--events-queue", "q" * 75 + ".fifo"), "q" * 75 + ".fifo"),
        (("--host", "localhost"), "localhost"),
        (("--host", "::1"), "::1"),
        (("--host", "0.0.0.0"), "0.0.0.0"),
        (("--port", "65535"), 65535),
        (("--s3-port", "0"), 0),
    ],
)
def test_emulate_takes_what_it_can_use(args: tuple[str, ...], value: object) -> None:
    parsed = vars(_parser().parse_args(["emulate", *args]))

    assert parsed[args[0][2:].replace("-", "_")] == value


def test_emulate_help_says_which_addresses_it_takes() -> None:
    result = run_command("emulate", "--help")

    assert "an IP address or localhost" in " ".join(result.stdout.split())
    assert "loopback address" not in result.stdout


@pytest.mark.parametrize(
    ("option", "server"), [("--port", "Bedrock emulator"), ("--s3-port", "S3/SQS server")]
)
def test_emulate_on_a_port_in_use_is_one_line(option: str, server: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_command("emulate", option, str(port))

    assert result.returncode == 1
    assert result.stderr == (
        f"batch-poller: cannot listen on 127.0.0.1:{port} for the {server}: "
        f"{os.strerror(errno.EADDRINUSE)}\n"
    )


def test_demo_on_a_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_command("demo", "--port", str(port))

    assert result.returncode == 1
    assert result.stderr == (
        f"batch-poller: cannot listen on 127.0.0.1:{port} for the status page: "
        f"{os.strerror(errno.EADDRINUSE)}\n"
    )
    # Refused before any job is tracked.
    assert "Status page" not in result.stdout


@pytest.mark.parametrize(
    ("keep", "reason"),
    [
        ("/proc/nope", os.strerror(errno.ENOENT)),
        ("/dev/null", "not a folder"),
    ],
)
def test_demo_keeping_its_database_where_it_cannot_is_one_line(keep: str, reason: str) -> None:
    result = run_command("demo", "--keep", keep)

    assert result.returncode == 1
    assert result.stderr == f"batch-poller: cannot keep the demo database in {keep}: {reason}\n"

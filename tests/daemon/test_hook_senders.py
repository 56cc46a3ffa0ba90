"""The two senders against real receivers: an aiohttp server on loopback that answers as told,
and child processes (with their own children) that read the event and exit as told."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web

from batch_poller.hooks.command import STDERR_TAIL_BYTES, CommandSender
from batch_poller.hooks.event import Attempt, HookEvent
from batch_poller.hooks.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TYPE_HEADER,
    verify,
)
from batch_poller.hooks.webhook import USER_AGENT, WebhookSender, retry_after
from tests.processes import DEADLINE

SECRET = "whsec_test"
SENT_AT = 1_700_000_000.0
BODY = b'{"type": "job.settled", "job_id": "abc123", "note": "caf\xc3\xa9"}\n'
EVENT = HookEvent(
    id="evt_3f2a9c",
    type="job.settled",
    body=BODY,
    fields={
        "job_arn": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123",
        "job_id": "abc123",
        "group": "nightly",
        "status": "Completed",
    },
)


@dataclass
class Receiver:
    """Answers /status/{code} with that code, /redirect with a 302 to /target, and /slow only
    once `release` is set; records every request it is sent."""

    url: str
    requests: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    state = Receiver(url="")

    async def record(request: web.Request) -> None:
        state.bodies.append(await request.read())
        state.requests.append(request)

    async def status(request: web.Request) -> web.Response:
        await record(request)
        code = int(request.match_info["code"])
        # Long enough to show that only its start is read.
        return web.Response(status=code, text=f"receiver says {code}\n" + "x" * 10_000)

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=302, headers={"Location": "/target"})

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await state.release.wait()
        return web.Response(status=200)

    app.router.add_post("/status/{code}", status)
    app.router.add_post("/redirect", redirect)
    app.router.add_route("*", "/target", status)

    async def throttled(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=429, headers={"Retry-After": request.query["after"]})

    app.router.add_post("/slow", slow)
    app.router.add_post("/throttled", throttled)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.url = f"http://{host}:{port}"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


async def send_once(url: str, timeout_seconds: float = 10.0, secret: str = SECRET) -> Attempt:
    sender = WebhookSender("test-hook", url, secret, timeout_seconds, now=lambda: SENT_AT)
    try:
        return await sender.send(EVENT)
    finally:
        await sender.close()


async def test_a_2xx_is_delivered_with_the_exact_body_and_a_signature_that_verifies(
    receiver: Receiver,
) -> None:
    attempt = await send_once(f"{receiver.url}/status/204")

    assert attempt == Attempt(delivered=True, retry=False, detail="HTTP 204")
    [request] = receiver.requests
    [body] = receiver.bodies
    headers = request.headers
    assert body == BODY
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == USER_AGENT
    assert headers[ID_HEADER] == EVENT.id
    assert headers[TYPE_HEADER] == "job.settled"
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    signed = (headers[ID_HEADER], headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert verify(SECRET, *signed, now=SENT_AT)
    assert not verify("whsec_wrong", *signed, now=SENT_AT)


async def test_a_hook_without_a_secret_sends_no_signature(receiver: Receiver) -> None:
    attempt = await send_once(f"{receiver.url}/status/200", secret="")

    assert attempt.delivered
    [request] = receiver.requests
    assert SIGNATURE_HEADER not in request.headers
    assert request.headers[ID_HEADER] == EVENT.id


async def test_one_sender_sends_again_after_it_is_closed(receiver: Receiver) -> None:
    sender = WebhookSender("test-hook", f"{receiver.url}/status/200", SECRET, 10.0)
    try:
        first = await sender.send(EVENT)
        second = await sender.send(EVENT)
        await sender.close()
        after_close = await sender.send(EVENT)
    finally:
        await sender.close()

    assert first.delivered and second.delivered and after_close.delivered
    assert receiver.bodies == [BODY, BODY, BODY]


@pytest.mark.parametrize("code", [500, 502, 503, 429, 408])
async def test_a_server_error_throttling_or_request_timeout_is_retried(
    receiver: Receiver, code: int
) -> None:
    attempt = await send_once(f"{receiver.url}/status/{code}")

    assert not attempt.delivered
    assert attempt.retry
    assert attempt.detail.startswith(f"HTTP {code}: receiver says {code} xxx")
    # The body's first 200 bytes, never the whole of it.
    assert len(attempt.detail) <= len(f"HTTP {code}: ") + 200


@pytest.mark.parametrize("code", [400, 401, 404, 410, 422])
async def test_another_client_error_is_not_retried(receiver: Receiver, code: int) -> None:
    attempt = await send_once(f"{receiver.url}/status/{code}")

    assert attempt.delivered is False
    assert attempt.retry is False
    assert attempt.detail.startswith(f"HTTP {code}: receiver says {code}")


async def test_a_redirect_is_not_followed_nor_retried(receiver: Receiver) -> None:
    attempt = await send_once(f"{receiver.url}/redirect")

    assert attempt == Attempt(
        delivered=False,
        retry=False,
        detail="HTTP 302: redirects are not followed; point the hook at the final URL",
    )
    assert receiver.paths() == ["/redirect"]
    assert receiver.paths().count("/target") == 0


async def test_a_receiver_that_does_not_answer_in_time_is_retried(receiver: Receiver) -> None:
    attempt = await send_once(f"{receiver.url}/slow", timeout_seconds=0.2)
    receiver.release.set()

    assert attempt == Attempt(delivered=False, retry=True, detail="timed out after 0.2 s")
    assert receiver.paths() == ["/slow"]


async def test_a_closed_port_is_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    attempt = await send_once(f"http://127.0.0.1:{port}/hook")

    assert attempt.delivered is False
    assert attempt.retry is True
    assert "refused" in attempt.detail


async def test_an_invalid_url_is_not_retried() -> None:
    attempt = await send_once("http://[not-a-host/hook")

    assert attempt.delivered is False
    assert attempt.retry is False
    assert attempt.detail.startswith("invalid URL")


# A command that copies its standard input and the variables it was given to files.
COPY_EVENT = """
import json, os, pathlib, sys
folder = pathlib.Path(sys.argv[1])
(folder / "body").write_bytes(sys.stdin.buffer.read())
names = [name for name in os.environ if name.startswith(("BATCH_POLLER_", "HOOK_TEST_"))]
(folder / "env.json").write_text(json.dumps({name: os.environ[name] for name in names}))
"""


async def test_a_command_gets_the_body_on_stdin_and_the_fields_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TEST_INHERITED", "from the daemon")
    # Larger than a pipe's buffer, so it is written as the command reads.
    body = BODY + b" " * 300_000 + b"\n"
    event = HookEvent(
        id=EVENT.id, type=EVENT.type, body=body, fields={**EVENT.fields, "error-code": "E42"}
    )
    sender = CommandSender(
        "copy",
        [sys.executable, "-c", COPY_EVENT, str(tmp_path)],
        timeout_seconds=DEADLINE,
        environment={"HOOK_TEST_OWN": "from the hook"},
    )

    attempt = await sender.send(event)
    await sender.close()

    assert attempt == Attempt(delivered=True, retry=False, detail="exit 0")
    assert (tmp_path / "body").read_bytes() == body
    assert json.loads((tmp_path / "env.json").read_text()) == {
        "HOOK_TEST_INHERITED": "from the daemon",
        "HOOK_TEST_OWN": "from the hook",
        "BATCH_POLLER_EVENT_ID": "evt_3f2a9c",
        "BATCH_POLLER_EVENT_TYPE": "job.settled",
        "BATCH_POLLER_JOB_ARN": EVENT.fields["job_arn"],
        "BATCH_POLLER_JOB_ID": "abc123",
        "BATCH_POLLER_GROUP": "nightly",
        "BATCH_POLLER_STATUS": "Completed",
        "BATCH_POLLER_ERROR_CODE": "E42",
    }


async def python_hook(script: str, timeout_seconds: float = DEADLINE) -> Attempt:
    return await CommandSender("py", [sys.executable, "-c", script], timeout_seconds).send(EVENT)


async def test_a_non_zero_exit_is_retried_with_the_end_of_its_stderr() -> None:
    attempt = await python_hook("import sys; sys.stderr.write('boom\\n'); sys.exit(3)")

    assert attempt == Attempt(delivered=False, retry=True, detail="exit 3: boom")


async def test_only_the_end_of_a_long_stderr_is_kept_on_one_line() -> None:
    script = "import sys; sys.stderr.write('noise\\n' * 5000 + 'the reason\\n'); sys.exit(1)"

    attempt = await python_hook(script)

    assert attempt.retry
    assert attempt.detail.startswith("exit 1: ")
    assert attempt.detail.endswith("noise noise the reason")
    assert "\n" not in attempt.detail
    assert len(attempt.detail) <= len("exit 1: ") + STDERR_TAIL_BYTES


async def test_a_command_that_exits_without_reading_its_stdin_is_judged_by_its_exit() -> None:
    command = CommandSender("no-read", [sys.executable, "-c", "pass"], DEADLINE)
    event = HookEvent(id=EVENT.id, type=EVENT.type, body=b"x" * 1_000_000, fields={})

    assert await command.send(event) == Attempt(delivered=True, retry=False, detail="exit 0")


async def test_a_command_killed_by_a_signal_says_which() -> None:
    attempt = await python_hook("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")

    assert attempt == Attempt(delivered=False, retry=True, detail="killed by SIGTERM")


async def test_a_command_that_leaves_a_process_holding_stderr_is_not_waited_for(
    tmp_path: Path,
) -> None:
    # The background sleep keeps stderr open after the shell exits, for longer than the timeout.
    script = f"sleep 30 & echo $! > {tmp_path}/background.pid; echo done >&2; exit 0"
    sender = CommandSender("background", ["/bin/sh", "-c", script], timeout_seconds=10)

    attempt = await sender.send(EVENT)

    os.kill(int((tmp_path / "background.pid").read_text()), signal.SIGKILL)
    assert attempt == Attempt(delivered=True, retry=False, detail="exit 0")


async def wait_gone(pid: int) -> bool:
    """Polls until no process has this pid, at most DEADLINE seconds; a killed orphan is reaped
    by whatever adopted it, which takes its own time."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_command_past_its_timeout_is_killed_with_what_it_started(tmp_path: Path) -> None:
    # A shell starts fast, so both pids are on file well before the timeout. The background
    # sleep outlasts wait_gone's bound: only the kill can make it go in time.
    script = (
        f"sleep {3 * DEADLINE:.0f} & echo $! > {tmp_path}/grandchild.pid;"
        f" echo $$ > {tmp_path}/child.pid; sleep 30"
    )
    sender = CommandSender("sleeper", ["/bin/sh", "-c", script], timeout_seconds=0.3)

    attempt = await sender.send(EVENT)

    child = int((tmp_path / "child.pid").read_text())
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    try:
        assert attempt == Attempt(
            delivered=False, retry=True, detail="timed out after 0.3 s, killed"
        )
        # The child was reaped before send returned.
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
        assert await wait_gone(grandchild)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(grandchild, signal.SIGKILL)


async def test_a_cancelled_send_kills_the_command(tmp_path: Path) -> None:
    script = f"echo $$ > {tmp_path}/child.pid; exec sleep 30"
    sender = CommandSender("sleeper", ["/bin/sh", "-c", script], timeout_seconds=DEADLINE)
    sending = asyncio.create_task(sender.send(EVENT))
    pid_file = tmp_path / "child.pid"
    deadline = time.monotonic() + DEADLINE
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)

    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending

    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


async def test_a_missing_program_is_not_retried(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-hook"

    attempt = await CommandSender("missing", [str(missing)], DEADLINE).send(EVENT)

    assert attempt == Attempt(
        delivered=False, retry=False, detail=f"cannot run {missing}: No such file or directory"
    )


async def test_a_program_that_is_not_executable_is_not_retried(tmp_path: Path) -> None:
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)

    attempt = await CommandSender("not-executable", [str(script)], DEADLINE).send(EVENT)

    assert attempt.delivered is False
    assert attempt.retry is False
    assert attempt.detail == f"cannot run {script}: Permission denied"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)],
)
async def test_a_throttled_answer_says_how_long_the_receiver_asked_to_wait(
    receiver: Receiver, header: str, seconds: float | None
) -> None:
    attempt = await send_once(f"{receiver.url}/throttled?after={quote(header)}")

    assert attempt.retry and attempt.detail.startswith("HTTP 429")
    assert attempt.retry_after == seconds


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_445_412_480.0  # 2015-10-21 07:28:00 UTC
    assert retry_after("30", now) == 30.0
    assert retry_after(" 7 ", now) == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now) == 60.0
    assert retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now) == 0.0  # in the past: now
    for unusable in (None, "", "-5", "1.5", "tomorrow", "²"):
        assert retry_after(unusable, now) is None

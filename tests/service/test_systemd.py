"""The real `batch-poller run` process as systemd runs it: sd_notify on a socket the test owns,
journald's native protocol on another, SIGHUP reloads, exit 78 on bad configuration, and the
unit file checked by systemd-analyze."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_poller.app import open_runtime
from batch_poller.config import load_settings
from batch_poller.emulator.server import Endpoints
from batch_poller.store.tables import SCHEMA_VERSION
from batch_poller.tracking import track_jobs
from tests.helpers import BUCKET, create_job, make_records, put_input
from tests.processes import Daemon, job_column, wait_until, write_config

ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """A datagram socket the daemon sends to, like systemd's notify and journal sockets."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.setblocking(False)
        self.received: list[bytes] = []

    def drain(self) -> list[bytes]:
        while True:
            try:
                self.received.append(self.socket.recv(1 << 20))
            except BlockingIOError:
                return self.received

    def close(self) -> None:
        self.socket.close()


def notify_messages(listener: Listener) -> list[dict[str, str]]:
    return [dict(line.split("=", 1) for line in m.decode().splitlines()) for m in listener.drain()]


def journal_entries(listener: Listener) -> list[dict[str, str]]:
    return [parse_journal(message) for message in listener.drain()]


def parse_journal(data: bytes) -> dict[str, str]:
    """journald's native format: KEY=value lines, or KEY, a 64-bit length, and the value."""
    fields: dict[str, str] = {}
    position = 0
    while position < len(data):
        end = data.index(b"\n", position)
        line = data[position:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            position = end + 1
        else:
            (length,) = struct.unpack("<Q", data[end + 1 : end + 9])
            fields[line.decode()] = data[end + 9 : end + 9 + length].decode()
            position = end + 9 + length + 1
    return fields


@pytest.fixture
def sockets() -> Iterator[tuple[Listener, Listener]]:
    # AF_UNIX paths are short (108 bytes): pytest's tmp_path can be longer.
    folder = Path(tempfile.mkdtemp(prefix="bp-", dir="/tmp"))
    notify, journal = Listener(folder / "notify"), Listener(folder / "journal")
    yield notify, journal
    notify.close()
    journal.close()
    shutil.rmtree(folder)


@pytest.fixture
def service(
    tmp_path: Path, endpoints: Endpoints, sockets: tuple[Listener, Listener]
) -> Iterator[Any]:
    """Starts the daemon as systemd would; yields a function that does it, stops it after."""
    notify, _ = sockets
    started: list[Daemon] = []

    def start(config: Path) -> Daemon:
        log = tmp_path / "stdout.log"
        log.touch()
        info = os.stat(log)
        env = {
            "NOTIFY_SOCKET": str(notify.path),
            "WATCHDOG_USEC": "200000",
            "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}",
        }
        daemon = Daemon(config, env=env, log_path=log)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.signal(signal.SIGTERM)
            daemon.wait(timeout=10)
        daemon.kill()


def _config(tmp_path: Path, endpoints: Endpoints, journal: Listener, **poller: Any) -> Path:
    return write_config(
        tmp_path,
        endpoints,
        poller={"interval_seconds": 0.2, **poller},
        logging={"format": "auto", "journal_socket": str(journal.path)},
    )


async def _finished_job(config: Path, bedrock: Any, s3: Any, control: Any, name: str) -> str:
    uri = await put_input(s3, f"{name}/input.jsonl", make_records(5, prefix=name))
    arn = await create_job(bedrock, uri, name=name, output_uri=f"s3://{BUCKET}/out/")
    async with open_runtime(load_settings(str(config))) as rt:
        await track_jobs(rt, [arn], f"s3://{BUCKET}/{name}/")
    await control.finish(arn, "Completed")
    return arn


def _events(journal: Listener, name: str) -> list[dict[str, str]]:
    return [entry for entry in journal_entries(journal) if entry.get("EVENT") == name]


async def test_ready_status_watchdog_and_journal_fields(
    tmp_path: Path,
    endpoints: Endpoints,
    sockets: Any,
    service: Any,
    bedrock: Any,
    s3: Any,
    control: Any,
) -> None:
    notify, journal = sockets
    config = _config(tmp_path, endpoints, journal)
    daemon = service(config)  # on a database that does not exist yet

    wait_until(
        lambda: any(m.get("READY") == "1" for m in notify_messages(notify)), "READY=1", daemon
    )
    with sqlite3.connect(tmp_path / "daemon.db") as db:
        migrated = db.execute("SELECT version FROM schema_version").fetchone()[0]
    arn = await _finished_job(config, bedrock, s3, control, "first")
    wait_until(
        lambda: job_column(tmp_path / "daemon.db", arn, "cleanup_completed_at"), "cleanup", daemon
    )
    wait_until(lambda: len([m for m in notify_messages(notify) if "WATCHDOG" in m]) >= 3, "pings")
    wait_until(
        lambda: any("1 completed" in m.get("STATUS", "") for m in notify_messages(notify)),
        "a STATUS= with the stored job",
    )

    messages = notify_messages(notify)
    assert migrated == SCHEMA_VERSION  # READY=1 came after the migration
    assert "STATUS" in messages[0] and messages[0]["READY"] == "1"
    stored = _events(journal, "results_stored")
    assert len(stored) == 1
    assert stored[0]["JOB_ARN"] == arn
    assert stored[0]["PRIORITY"] == "6"
    assert stored[0]["RECORDS"] == "5"
    assert stored[0]["SYSLOG_IDENTIFIER"] == "batch-poller"
    assert stored[0]["MESSAGE"].startswith("results_stored ")
    started = _events(journal, "daemon_started")
    assert [(e["POLLING"], e["EVENTS"]) for e in started] == [("running", "off")]
    assert daemon.log_path.read_text() == ""  # everything went to the journal

    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0
    assert any(m.get("STOPPING") == "1" for m in notify_messages(notify))


async def test_nothing_is_sent_without_notify_socket(
    tmp_path: Path, endpoints: Endpoints, sockets: Any
) -> None:
    notify, journal = sockets
    config = _config(tmp_path, endpoints, journal)
    daemon = Daemon(config)  # no NOTIFY_SOCKET, no JOURNAL_STREAM: plain JSON lines
    try:
        daemon.wait_for(lambda: "daemon_started" in daemon.log_path.read_text(), "the start")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
    finally:
        daemon.kill()

    assert notify.drain() == [] and journal.drain() == []


async def test_sighup_applies_a_new_interval_on_the_next_pass(
    tmp_path: Path,
    endpoints: Endpoints,
    sockets: Any,
    service: Any,
    bedrock: Any,
    s3: Any,
    control: Any,
) -> None:
    notify, journal = sockets
    config = _config(tmp_path, endpoints, journal, interval_seconds=3600)
    daemon = service(config)
    wait_until(lambda: _events(journal, "daemon_started"), "the start", daemon)
    wait_until(
        lambda: any("last pass" in m.get("STATUS", "") for m in notify_messages(notify)), "a pass"
    )

    assert not any(e["PRIORITY"] == "7" for e in journal_entries(journal))
    config.write_text(config.read_text().replace("3600", "0.2").replace('"INFO"', '"DEBUG"'))
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: _events(journal, "reloaded"), "the reload", daemon)
    arn = await _finished_job(config, bedrock, s3, control, "after-reload")

    # With the old interval this job would wait an hour; with the new one, a fraction of a second.
    wait_until(lambda: job_column(tmp_path / "daemon.db", arn, "status") == "COMPLETED", "the job")
    reloaded = _events(journal, "reloaded")[0]
    assert "poller.interval_seconds" in reloaded["CHANGED"]
    assert "logging.level" in reloaded["CHANGED"]
    assert _events(journal, "pass_done")[0]["PRIORITY"] == "7"  # the new level applies at once
    kinds = [next(iter(m)) for m in notify_messages(notify)]
    assert kinds.index("RELOADING") < len(kinds) - 1
    after = notify_messages(notify)[kinds.index("RELOADING") + 1 :]
    assert any(m.get("READY") == "1" for m in after)


async def test_sighup_with_a_broken_file_keeps_running_on_the_old_settings(
    tmp_path: Path,
    endpoints: Endpoints,
    sockets: Any,
    service: Any,
    bedrock: Any,
    s3: Any,
    control: Any,
) -> None:
    _, journal = sockets
    config = _config(tmp_path, endpoints, journal)
    daemon = service(config)
    wait_until(lambda: _events(journal, "daemon_started"), "the start", daemon)
    good = config.read_text()

    config.write_text(good + "\n[poller\nbroken = ")
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: _events(journal, "reload_failed"), "the refusal", daemon)
    config.write_text(good.replace("daemon.db", "elsewhere.db"))
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: _events(journal, "reloaded"), "the second reload", daemon)
    tracking = tmp_path / "tracking.toml"
    tracking.write_text(good)  # the database the daemon still uses
    arn = await _finished_job(tracking, bedrock, s3, control, "still-working")
    wait_until(lambda: job_column(tmp_path / "daemon.db", arn, "status") == "COMPLETED", "the job")

    failed = _events(journal, "reload_failed")[0]
    assert failed["PRIORITY"] == "3" and "is not valid TOML" in failed["ERROR"]
    restart = _events(journal, "reload_needs_restart")[0]
    assert "database.url" in restart["SETTINGS"]
    assert not (tmp_path / "elsewhere.db").exists()
    assert daemon.process.poll() is None


BAD_CONFIGS = {
    "unknown key": ("[poller]\nintervall = 5\n", None, "unknown setting 'poller.intervall'"),
    "wrong type": ("[poller]\nenabled = 'maybe'\n", None, "setting poller.enabled='maybe'"),
    "out of range": ("[poller]\nmax_concurrent_jobs = 0\n", None, "poller.max_concurrent_jobs=0"),
    "syntax error": ("[poller\n", None, "is not valid TOML"),
    "unreadable file": (None, None, "cannot read config file"),
    "bad environment": (
        "",
        {"BATCH_POLLER_POLLER__INTERVAL_SECONDS": "-1"},
        "environment BATCH_POLLER_POLLER__INTERVAL_SECONDS",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS), ids=list(BAD_CONFIGS))
def test_each_bad_configuration_exits_78_with_one_line(tmp_path: Path, case: str) -> None:
    content, env, message = BAD_CONFIGS[case]
    path = tmp_path / "config.toml"
    if content is not None:
        path.write_text(content)

    result = subprocess.run(
        [sys.executable, "-m", "batch_poller", "--config", str(path), "run"],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )

    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    if env is None:
        assert str(path) in lines[0]


ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _unit_for_this_install(tmp_path: Path) -> Path:
    """The unit with ExecStart at this installation's console script, as install.sh writes it."""
    script = Path(sys.executable).with_name("batch-poller")
    assert script.exists()
    unit = tmp_path / "batch-poller.service"
    text = (ROOT / "batch-poller.service").read_text()
    unit.write_text(text.replace("/usr/local/bin/batch-poller", str(script)))
    return unit


@needs_analyze
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ANALYZE), "verify", str(_unit_for_this_install(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@needs_analyze
def test_the_unit_scores_2_or_less_in_systemd_analyze_security(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ANALYZE), "security", "--offline=true", str(ROOT / "batch-poller.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    line = next(x for x in result.stdout.splitlines() if "Overall exposure level" in x)
    exposure = float(line.split(":")[1].split()[0])
    assert exposure <= 2.0, line


def test_the_unit_declares_what_the_service_needs() -> None:
    text = (ROOT / "batch-poller.service").read_text()
    for setting in (
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "WatchdogSec=",
        "TimeoutStopSec=",
        "StateDirectory=batch-poller",
        "ConfigurationDirectory=batch-poller",
        "DynamicUser=yes",
        "UMask=0077",
    ):
        assert setting in text

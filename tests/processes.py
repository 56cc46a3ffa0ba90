"""A real `batch-poller` process for tests: its config file, its log, its database, its signals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from batch_poller.emulator.server import Endpoints

# The daemon as `python -m batch_poller`, and as the installed command systemd runs.
PYTHON_MODULE = (sys.executable, "-m", "batch_poller")
CONSOLE_SCRIPT = (str(Path(sys.executable).parent / "batch-poller"),)

# How long a test waits for something the daemon is expected to do before it fails. Never a
# pass condition: tests wait for events or states, this only bounds a hang.
DEADLINE = 60.0


def write_config(folder: Path, endpoints: Endpoints, **sections: dict[str, Any]) -> Path:
    values: dict[str, dict[str, Any]] = {
        "aws": {
            "bedrock_endpoint_url": endpoints.bedrock,
            "s3_endpoint_url": endpoints.s3,
            "max_calls_per_second": 0,
        },
        "database": {"url": f"sqlite:///{folder / 'daemon.db'}"},
        "poller": {"interval_seconds": 0.2, "check_interval_seconds": 0},
        "logging": {"format": "json", "level": "INFO"},
        # Any free port: tests run side by side and never take the default 8787.
        "http": {"port": 0},
    }
    for name, section in sections.items():
        values[name] = {**values.get(name, {}), **section}
    path = folder / "config.toml"
    path.write_text("\n".join(_toml_section(name, body) for name, body in values.items()))
    return path


def _toml_section(name: str, body: dict[str, Any]) -> str:
    lines = [f"[{name}]"]
    for key, value in body.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


class Daemon:
    """`batch-poller --config FILE run` in a child process, its log in a file."""

    def __init__(
        self,
        config: Path,
        *args: str,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        program: Sequence[str] = PYTHON_MODULE,
    ) -> None:
        self.log_path = log_path or config.parent / f"daemon-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*program, "--config", str(config), "run", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text().splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"the daemon exited ({code}) before {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}:\n{self.tail()}")
            time.sleep(0.01)

    def tail(self) -> str:
        return self.log_path.read_text()[-3000:]

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._log.close()
        return code

    def stop(self) -> None:
        """SIGTERM if it still runs, then make sure it is gone."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@contextlib.contextmanager
def running(config: Path, *args: str, **options: Any) -> Iterator[Daemon]:
    """A daemon for the length of a `with` block, stopped (SIGTERM, then SIGKILL) after it."""
    daemon = Daemon(config, *args, **options)
    try:
        yield daemon
    finally:
        daemon.stop()


def run_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`batch-poller ARGS...` run to its end, its output captured."""
    return subprocess.run(
        [*PYTHON_MODULE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def wait_until(condition: Callable[[], object], what: str, daemon: Daemon | None = None) -> None:
    """Waits for a condition outside any daemon's log; a daemon that exits meanwhile fails it."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if daemon is not None and daemon.process.poll() is not None:
            raise AssertionError(f"the daemon exited before {what}: {daemon.tail()}")
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def query(database: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Reads the daemon's SQLite database the way an operator would, from outside."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def count_records(database: Path, arn: str) -> int:
    if not database.exists():
        return 0
    try:
        return int(
            query(database, "SELECT count(*) FROM batch_records WHERE batch_job_arn = ?", arn)[0][0]
        )
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def job_column(database: Path, arn: str, column: str) -> Any:
    try:
        rows = query(
            database, f"SELECT {column} FROM bedrock_batch_jobs WHERE batch_job_arn = ?", arn
        )
    except sqlite3.OperationalError:
        return None
    return rows[0][0] if rows else None

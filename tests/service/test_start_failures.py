"""`batch-poller run` when it cannot start: the admin API's port taken or its address not here,
and `run --once` beside a database that never answers. One line and an exit status, never a
traceback, and never a wait without end."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_poller.config import EX_CONFIG
from batch_poller.daemon import ONCE_ATTEMPTS
from batch_poller.emulator.server import Endpoints
from tests.processes import write_config
from tests.service.db_faults import read_only_bind
from tests.service.test_database_faults import FAST_DATABASE, sqlite_write_lock


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_poller", "--config", str(config), "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _the_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line printed besides the JSON log."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_port_in_use_exits_1_naming_the_address_and_the_setting(
    tmp_path: Path, endpoints: Endpoints, taken_port: int
) -> None:
    config = write_config(tmp_path, endpoints, http={"port": taken_port})

    result = _run(config)

    assert result.returncode == 1
    line = _the_line(result)
    assert f"127.0.0.1:{taken_port}" in line and "[http]" in line
    assert "Address already in use" in line


def test_an_address_not_on_this_host_exits_78(tmp_path: Path, endpoints: Endpoints) -> None:
    # 192.0.2.1 is TEST-NET-1: never a local address.
    config = write_config(
        tmp_path, endpoints, http={"host": "192.0.2.1", "port": 0, "admin_token": "t0ken"}
    )

    result = _run(config)

    assert result.returncode == EX_CONFIG
    line = _the_line(result)
    assert "192.0.2.1:0" in line and os.strerror(errno.EADDRNOTAVAIL) in line


def _once_config(tmp_path: Path, endpoints: Endpoints, database: Path) -> Path:
    return write_config(
        tmp_path, endpoints, database={"url": f"sqlite:///{database}", **FAST_DATABASE}
    )


def _gave_up(result: subprocess.CompletedProcess[str], error: str) -> None:
    assert result.returncode == 1, result.stderr
    line = _the_line(result)
    assert f"after {ONCE_ATTEMPTS} attempts" in line and error in line, line


def test_run_once_gives_up_on_a_locked_database(tmp_path: Path, endpoints: Endpoints) -> None:
    database = tmp_path / "daemon.db"
    config = _once_config(tmp_path, endpoints, database)

    with sqlite_write_lock(database):  # a new file: its schema needs the write lock
        result = _run(config, "--once")

    _gave_up(result, "database is locked")


def test_run_once_gives_up_on_a_read_only_folder(
    tmp_path: Path, endpoints: Endpoints, read_only: Any
) -> None:
    config = _once_config(tmp_path, endpoints, read_only.folder / "daemon.db")

    read_only.on()
    result = _run(config, "--once")

    _gave_up(result, "unable to open database file")


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Any]:
    folder = tmp_path / "db"
    folder.mkdir()
    with read_only_bind(folder) as switch:
        yield switch

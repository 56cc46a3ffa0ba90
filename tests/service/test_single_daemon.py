"""One daemon per SQLite file: a second `batch-poller run` on the file of a running daemon exits
78 with one line naming the file and the daemon's pid, the one-off commands work beside it, and
once the daemon is killed (SIGKILL: nothing of it cleans up) a new one starts. Real processes on
a real file."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from batch_poller.config import EX_CONFIG
from batch_poller.emulator.server import Endpoints
from batch_poller.store.daemon_lock import DaemonLock, flock_holder
from batch_poller.store.engine import to_async_url
from tests.helpers import BUCKET, create_job, make_records, put_input
from tests.processes import Daemon, job_column, run_command, running, wait_until, write_config
from tests.service.test_start_failures import _the_line


def _started(daemon: Daemon) -> bool:
    return any(event.get("event") == "daemon_started" for event in daemon.events())


async def test_a_second_daemon_on_the_file_is_refused_and_one_off_commands_still_work(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any
) -> None:
    database = tmp_path / "daemon.db"
    config = write_config(tmp_path, endpoints)
    with running(config) as first:
        first.wait_for(lambda: _started(first), "the first daemon's start")

        second = run_command("--config", str(config), "run")
        assert second.returncode == EX_CONFIG, second.stderr
        line = _the_line(second)
        assert str(database) in line and f"pid {first.process.pid}" in line, line
        assert not any(event.get("event") == "daemon_started" for event in _log(second.stderr))

        # `run --once` is the daemon for one pass: refused alike.
        once = run_command("--config", str(config), "run", "--once")
        assert once.returncode == EX_CONFIG, once.stderr
        assert f"pid {first.process.pid}" in _the_line(once)

        # The one-off commands take no such lock: they write and read beside the daemon, and
        # the daemon sees what they wrote.
        uri = await put_input(s3, "beside/input.jsonl", make_records(5, prefix="beside"))
        arn = await create_job(bedrock, uri, name="beside", output_uri=f"s3://{BUCKET}/out/")
        prefix = f"s3://{BUCKET}/beside/"
        tracked = run_command("--config", str(config), "track", arn, "--input-prefix", prefix)
        assert tracked.returncode == 0, tracked.stderr
        listed = run_command("--config", str(config), "jobs", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [json.loads(row)["batch_job_arn"] for row in listed.stdout.splitlines()] == [arn]
        wait_until(lambda: job_column(database, arn, "last_checked_at"), "a check", first)
        passed = run_command("--config", str(config), "process-completed")
        assert passed.returncode == 0, passed.stderr

        first.signal(signal.SIGKILL)
        first.wait(timeout=10)

    with running(config) as third:
        third.wait_for(lambda: _started(third), "a new daemon's start after the kill")
        assert flock_holder(str(database)) == third.process.pid


def _log(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_the_holder_is_named_from_proc_locks(tmp_path: Path) -> None:
    database = tmp_path / "held.db"
    database.write_bytes(b"")
    lock = DaemonLock.open(to_async_url(f"sqlite:///{database}"))
    assert lock is not None
    try:
        assert flock_holder(str(database)) is None
        lock.take()
        assert flock_holder(str(database)) == os.getpid()
    finally:
        lock.close()
    assert flock_holder(str(database)) is None


def test_postgresql_and_in_memory_sqlite_take_no_lock() -> None:
    assert DaemonLock.open(to_async_url("sqlite://")) is None
    assert DaemonLock.open(to_async_url("postgresql://postgres@127.0.0.1:5432/test")) is None


async def test_a_hard_link_to_the_database_is_refused_before_anything_is_written(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any
) -> None:
    """SQLite keeps its WAL beside each name: opened by a second name, the file is lost. Every
    command refuses such a file before it opens it, and the running daemon's passes fail."""
    database = tmp_path / "daemon.db"
    config = write_config(tmp_path, endpoints)
    uri = await put_input(s3, "linked/input.jsonl", make_records(3, prefix="linked"))
    arn = await create_job(bedrock, uri, name="linked", output_uri=f"s3://{BUCKET}/out/")
    with running(config) as first:
        first.wait_for(lambda: _started(first), "the daemon's start")
        assert run_command("--config", str(config), "track", arn).returncode == 0
        wait_until(lambda: job_column(database, arn, "last_checked_at"), "a check", first)

        link = tmp_path / "other" / "linked.db"
        link.parent.mkdir()
        os.link(database, link)
        linked = write_config(link.parent, endpoints, database={"url": f"sqlite:///{link}"})
        second = run_command("--config", str(linked), "run")
        listed = run_command("--config", str(linked), "jobs", "--json")
        first.wait_for(
            lambda: any("has 2 names" in str(e.get("error")) for e in first.events()),
            "the daemon's passes to fail on the second name",
        )
        link.unlink()

    # The daemon is refused by the lock on the file (the same file, whatever its name),
    # taken before anything is opened; a one-off command by the second name itself.
    assert second.returncode == EX_CONFIG, second.stderr
    assert f"another daemon (pid {first.process.pid}) holds" in _the_line(second)
    assert listed.returncode == 1 and "has 2 names (hard links)" in listed.stderr
    assert not (link.parent / "linked.db-wal").exists()  # nothing written by that name
    # The data is whole once the other name is gone.
    after = run_command("--config", str(config), "jobs", "--json")
    assert [json.loads(row)["batch_job_arn"] for row in after.stdout.splitlines()] == [arn]

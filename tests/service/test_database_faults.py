"""Database faults under the real `batch-poller run` process: a writer holding the SQLite lock at
start and mid-ingest, a read-only folder for a while, a full disk, PostgreSQL stopped and started
under the daemon, and configuration mistakes at start. Nothing here mocks the database."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from batch_poller.app import open_runtime
from batch_poller.config import load_settings
from batch_poller.emulator.server import Endpoints
from batch_poller.tracking import track_jobs
from tests.daemon_fixtures import PG_ADMIN_URL
from tests.helpers import BUCKET, create_job, make_records, put_input
from tests.processes import (
    CONSOLE_SCRIPT,
    PYTHON_MODULE,
    Daemon,
    count_records,
    job_column,
    running,
    wait_until,
    write_config,
)
from tests.service.db_faults import (
    Notifications,
    PrivateCluster,
    free_port,
    read_only_bind,
    small_tmpfs,
)

# Small waits everywhere: a test waits for states and events, never for these to pass.
FAST_DATABASE = {
    "connect_retry_base_seconds": 0.05,
    "connect_retry_max_seconds": 0.4,
    "sqlite_busy_timeout_seconds": 0.1,
}
FAST_RETRIES = {"max_retries": 10, "retry_base_seconds": 0.05}


def _config(folder: Path, endpoints: Endpoints, url: str, **sections: Any) -> Path:
    results = {**FAST_RETRIES, **sections.pop("results", {})}
    database = {"url": url, **FAST_DATABASE}
    return write_config(folder, endpoints, database=database, results=results, **sections)


def _events(daemon: Daemon, name: str) -> list[dict[str, Any]]:
    return [event for event in daemon.events() if event.get("event") == name]


def _http(daemon: Daemon) -> str:
    daemon.wait_for(lambda: _events(daemon, "http_listening"), "the admin API")
    return str(_events(daemon, "http_listening")[0]["url"]).rstrip("/")


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _health(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    return _get(_http(daemon) + "/healthz")


@contextlib.contextmanager
def sqlite_write_lock(database: Path) -> Iterator[sqlite3.Connection]:
    """Another writer: a real connection holding SQLite's write lock until the block ends."""
    conn = sqlite3.connect(database, isolation_level=None, timeout=10)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def _track(config: Path, bedrock: Any, s3: Any, name: str, records: int = 5) -> str:
    uri = await put_input(s3, f"{name}/input.jsonl", make_records(records, prefix=name))
    arn = await create_job(bedrock, uri, name=name, output_uri=f"s3://{BUCKET}/out/")
    async with open_runtime(load_settings(str(config))) as rt:
        await track_jobs(rt, [arn], f"s3://{BUCKET}/{name}/")
    return arn


def _no_tracebacks(daemon: Daemon) -> None:
    assert "Traceback" not in daemon.log_path.read_text(), daemon.tail()


# -- start-up ------------------------------------------------------------------------------------


async def test_a_busy_database_at_start_is_waited_for_and_ready_follows_it(
    tmp_path: Path, endpoints: Endpoints
) -> None:
    database = tmp_path / "daemon.db"
    config = _config(tmp_path, endpoints, f"sqlite:///{database}")
    with Notifications() as notify:
        with sqlite_write_lock(database):
            daemon = Daemon(config, env=notify.env())
            try:
                daemon.wait_for(
                    lambda: len(_events(daemon, "database_unavailable")) >= 2, "two waits"
                )
                assert not notify.ready()  # not READY while the database cannot be used
            except BaseException:
                daemon.kill()
                raise
        try:
            daemon.wait_for(lambda: _events(daemon, "daemon_started"), "the start")
            wait_until(notify.ready, "READY=1", daemon)
            waits = _events(daemon, "database_unavailable")
            assert all("database is locked" in w["error"] for w in waits)
            assert [w["attempt"] for w in waits[:2]] == [1, 2]
            assert waits[1]["retry_in"] > waits[0]["retry_in"]  # backing off
            _no_tracebacks(daemon)
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0
        finally:
            daemon.kill()


async def test_sigterm_while_waiting_for_the_database_exits_0(
    tmp_path: Path, endpoints: Endpoints
) -> None:
    database = tmp_path / "daemon.db"
    config = _config(tmp_path, endpoints, f"sqlite:///{database}")
    with sqlite_write_lock(database), running(config) as daemon:
        daemon.wait_for(lambda: _events(daemon, "database_unavailable"), "a wait")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    assert _events(daemon, "daemon_stopped")
    assert not _events(daemon, "daemon_started")
    _no_tracebacks(daemon)


def _catches_sigterm(pid: int) -> bool:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("program", [PYTHON_MODULE, CONSOLE_SCRIPT], ids=["module", "script"])
async def test_sigterm_in_the_first_moments_of_start_up_exits_0(
    tmp_path: Path, endpoints: Endpoints, program: tuple[str, ...]
) -> None:
    database = tmp_path / "daemon.db"
    config = _config(tmp_path, endpoints, f"sqlite:///{database}")
    with running(config, program=program) as daemon:
        daemon.wait_for(lambda: _catches_sigterm(daemon.process.pid), "a SIGTERM handler")
        # The handler is there before the daemon's modules are imported, so long before the
        # database is opened.
        opened_before_the_handler = database.exists()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    assert not opened_before_the_handler
    assert not database.exists()  # it stopped before opening anything


def _run_once_for_exit(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_poller", "--config", str(config), "run"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _pg_url(user: str = "postgres", database: str = "postgres", port: int | None = None) -> str:
    host = PG_ADMIN_URL.rsplit("@", 1)[1].split("/")[0]
    hostname, _, default_port = host.partition(":")
    return f"postgresql://{user}@{hostname}:{port or default_port or 5432}/{database}"


MISTAKES = {
    "unsupported scheme": ("mysql://admin:hunter2@db.example/jobs", "scheme 'mysql'"),
    "missing folder": ("sqlite:////nonexistent-folder/jobs.db", "/nonexistent-folder"),
    "unknown role": (_pg_url(user="no_such_role_bp"), 'role "no_such_role_bp" does not exist'),
    "unknown database": (_pg_url(database="no_such_db_bp"), 'database "no_such_db_bp" does not'),
}


@pytest.mark.parametrize("case", list(MISTAKES), ids=list(MISTAKES))
def test_a_database_configuration_mistake_exits_78_with_one_line(
    tmp_path: Path, endpoints: Endpoints, case: str
) -> None:
    url, message = MISTAKES[case]
    result = _run_once_for_exit(_config(tmp_path, endpoints, url))

    assert result.returncode == 78, result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "configuration error" in lines[0] and message in lines[0]
    assert "hunter2" not in result.stderr


async def test_an_unreachable_postgresql_is_waited_for_one_line_an_attempt(
    tmp_path: Path, endpoints: Endpoints
) -> None:
    config = _config(tmp_path, endpoints, _pg_url(port=free_port()))
    with running(config) as daemon:
        daemon.wait_for(lambda: len(_events(daemon, "database_unavailable")) >= 3, "three waits")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    waits = _events(daemon, "database_unavailable")
    assert all("refused" in w["error"].lower() for w in waits), waits
    assert waits[2]["retry_in"] > waits[0]["retry_in"]
    _no_tracebacks(daemon)


# -- while running -------------------------------------------------------------------------------


async def test_a_writer_holding_the_lock_mid_ingest_delays_the_job_and_loses_nothing(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    await control.freeze_clock()
    database = tmp_path / "daemon.db"
    records = 3000
    config = _config(tmp_path, endpoints, f"sqlite:///{database}", results={"batch_size": 1})
    with running(config) as daemon:
        daemon.wait_for(lambda: _events(daemon, "daemon_started"), "the start")
        arn = await _track(config, bedrock, s3, "locked", records)
        await control.finish(arn, "Completed")
        daemon.wait_for(lambda: count_records(database, arn) > 0, "the ingest to begin")
        with sqlite_write_lock(database):
            stored_while_locked = count_records(database, arn)
            daemon.wait_for(
                lambda: any("locked" in str(e.get("error")) for e in daemon.events()),
                "the daemon to meet the lock",
            )
        daemon.wait_for(lambda: job_column(database, arn, "status") == "COMPLETED", "the job")
        daemon.wait_for(lambda: job_column(database, arn, "cleanup_completed_at"), "the cleanup")
        assert daemon.process.poll() is None

    assert stored_while_locked < records  # the lock came in the middle of the ingest
    assert count_records(database, arn) == records
    assert job_column(database, arn, "total_records") == records


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Any]:
    """A folder that can be turned read-only for new opens and back, as `chmod a-w` does to a
    daemon not running as root. Needs root (a read-only bind mount over the folder)."""
    folder = tmp_path / "db"
    folder.mkdir()
    with read_only_bind(folder) as switch:
        yield switch


async def test_a_read_only_folder_for_a_while_fails_health_then_recovers_without_restart(
    tmp_path: Path,
    endpoints: Endpoints,
    bedrock: Any,
    s3: Any,
    control: Any,
    read_only_folder: Any,
) -> None:
    await control.freeze_clock()
    database = read_only_folder.folder / "daemon.db"
    config = _config(
        tmp_path,
        endpoints,
        f"sqlite:///{database}",
        poller={
            "interval_seconds": 0.05,
            "check_interval_seconds": 0,
            "unhealthy_after_seconds": 1,
        },
    )
    with Notifications() as notify:
        daemon = Daemon(config, env=notify.env(watchdog_usec=100_000))
        try:
            base = _http(daemon)
            arn = await _track(config, bedrock, s3, "readonly")
            wait_until(lambda: notify.count("WATCHDOG") >= 1, "a watchdog ping", daemon)

            read_only_folder.on()
            # Requests at once make the pool open connections now, read-only ones.
            with ThreadPoolExecutor(16) as pool:
                while _health(daemon)[0] == 200:
                    list(pool.map(lambda _: _get(base + "/api/batch/jobs"), range(32)))
            status, body = _health(daemon)
            assert status == 503 and "readonly" in body["last_error"], body
            # Passes overlap: one still on a connection opened before the episode may succeed
            # in between, until the pool it came from is gone; the status says failing too.
            daemon.wait_for(
                lambda: _get(base + "/api/batch/poller/status")[1]["health"] == "failing",
                "the status to say failing",
            )
            daemon.wait_for(lambda: _events(daemon, "watchdog_withheld"), "the watchdog to stop")
            read_only_folder.off()

            await control.finish(arn, "Completed")
            daemon.wait_for(lambda: job_column(database, arn, "status") == "COMPLETED", "the job")
            daemon.wait_for(lambda: _health(daemon)[0] == 200, "health to come back")
            daemon.wait_for(lambda: _events(daemon, "watchdog_resumed"), "the watchdog again")
            assert daemon.process.poll() is None  # recovered without a restart
            assert count_records(database, arn) == 5
            failures = _events(daemon, "pass_failed")
            assert failures and len(failures) < 20, len(failures)  # once, then counted
            assert _events(daemon, "passes_recovered")
            assert not any("exception" in event for event in failures)
        finally:
            daemon.stop()


async def test_a_full_disk_loses_no_job_and_the_job_completes_once_space_is_freed(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    await control.freeze_clock()
    folder = tmp_path / "small"
    folder.mkdir()
    records = 2000
    with small_tmpfs(folder, megabytes=4):
        database = folder / "daemon.db"
        config = _config(tmp_path, endpoints, f"sqlite:///{database}")
        with running(config) as daemon:
            daemon.wait_for(lambda: _events(daemon, "daemon_started"), "the start")
            arn = await _track(config, bedrock, s3, "full", records)
            filler = folder / "filler"
            # Unbuffered, and the close inside the suppress too: a buffered close flushes into
            # the full disk and fails again.
            with contextlib.suppress(OSError), filler.open("wb", buffering=0) as out:
                while True:
                    out.write(b"\0" * 65536)
            await control.finish(arn, "Completed")
            daemon.wait_for(
                lambda: "database or disk is full" in daemon.log_path.read_text(), "a full disk"
            )
            assert job_column(database, arn, "cleanup_completed_at") is None
            filler.unlink()
            daemon.wait_for(lambda: job_column(database, arn, "status") == "COMPLETED", "the job")
            daemon.wait_for(lambda: job_column(database, arn, "cleanup_completed_at"), "cleanup")
            assert daemon.process.poll() is None
        assert count_records(database, arn) == records


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivateCluster]:
    with PrivateCluster.create() as cluster:
        yield cluster


async def test_postgresql_down_at_start_and_stopped_under_the_daemon(
    tmp_path: Path,
    endpoints: Endpoints,
    bedrock: Any,
    s3: Any,
    control: Any,
    private_postgres: PrivateCluster,
) -> None:
    await control.freeze_clock()
    private_postgres.stop()
    config = _config(tmp_path, endpoints, private_postgres.url())
    with Notifications() as notify, running(config, env=notify.env()) as daemon:
        daemon.wait_for(lambda: _events(daemon, "database_unavailable"), "a wait")
        assert not notify.ready()
        private_postgres.start()
        daemon.wait_for(lambda: _events(daemon, "daemon_started"), "the start")
        assert notify.ready()
        arn = await _track(config, bedrock, s3, "pg")
        daemon.wait_for(lambda: _health(daemon)[1]["passes"] >= 2, "passes")

        private_postgres.stop()
        daemon.wait_for(lambda: _health(daemon)[0] == 503, "health to fail")
        private_postgres.start()
        await control.finish(arn, "Completed")
        base = _http(daemon)
        daemon.wait_for(
            lambda: _get(f"{base}/api/batch/jobs/{arn}")[1].get("cleanup") == "done", "the job"
        )
        daemon.wait_for(lambda: _health(daemon)[0] == 200, "health to come back")
        job = _get(f"{base}/api/batch/jobs/{arn}")[1]
        assert job["status"] == "COMPLETED" and job["total_records"] == 5
        assert daemon.process.poll() is None
        _no_tracebacks(daemon)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0

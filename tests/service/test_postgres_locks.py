"""A PostgreSQL lock held by another session: the daemon's statements give up after
[database] lock_timeout_seconds, the job's fetch attempt fails naming the lock timeout, and the
job completes once the lock is gone. The real daemon process, a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from batch_poller.emulator.server import Endpoints
from tests.processes import running, write_config
from tests.service.test_database_faults import FAST_DATABASE, FAST_RETRIES, _track


def _fetch_value(url: str, sql: str, *args: Any) -> Any:
    """One value read on a connection of its own, from synchronous code (a wait's condition)."""
    found: list[Any] = []

    async def read() -> None:
        conn = await asyncpg.connect(url)
        try:
            found.append(await conn.fetchval(sql, *args))
        finally:
            await conn.close()

    worker = threading.Thread(target=lambda: asyncio.run(read()))
    worker.start()
    worker.join()
    return found[0] if found else None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_lock_held_by_another_session_fails_the_fetch_then_the_job_completes(
    tmp_path: Path,
    endpoints: Endpoints,
    bedrock: Any,
    s3: Any,
    control: Any,
    database_url: str,
) -> None:
    await control.freeze_clock()
    config = write_config(
        tmp_path,
        endpoints,
        database={"url": database_url, **FAST_DATABASE, "lock_timeout_seconds": 0.2},
        results=FAST_RETRIES,
    )
    arn = await _track(config, bedrock, s3, "pglock")

    def column(name: str) -> Any:
        sql = f"SELECT {name} FROM bedrock_batch_jobs WHERE batch_job_arn = $1"
        return _fetch_value(database_url, sql, arn)

    holder = await asyncpg.connect(database_url)
    try:
        with running(config) as daemon:
            daemon.wait_for(
                lambda: any(e.get("event") == "daemon_started" for e in daemon.events()),
                "the start",
            )
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("LOCK TABLE batch_records IN ACCESS EXCLUSIVE MODE")
            await control.finish(arn, "Completed")
            daemon.wait_for(lambda: "lock timeout" in str(column("last_error")), "the timeout")
            assert column("results_fetch_attempts") >= 1
            await transaction.rollback()

            daemon.wait_for(lambda: column("status") == "COMPLETED", "the job")
            assert daemon.process.poll() is None
    finally:
        await holder.close()
    assert "Traceback" not in daemon.log_path.read_text()

"""The store's one transaction helper: a write survives its caller's cancellation, and a
transient failure (a PostgreSQL connection that was cut, SQLite busy) is tried again, while a
failure that another try would repeat is not."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from store_testlib import NOW, arn

from batch_poller.rows import NewJob
from batch_poller.store import JobStore
from batch_poller.store.tables import bedrock_batch_jobs
from batch_poller.store.transactions import is_transient


async def _message(store: JobStore) -> str | None:
    async with store.engine.connect() as conn:
        query = select(bedrock_batch_jobs.c.message).where(
            bedrock_batch_jobs.c.batch_job_arn == arn(1)
        )
        return (await conn.execute(query)).scalar_one()


async def test_a_write_commits_even_when_its_caller_is_cancelled(store: JobStore) -> None:
    await store.track_job(NewJob(arn=arn(1)), NOW)
    inside = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_write(conn: AsyncConnection) -> None:
        await conn.execute(update(bedrock_batch_jobs).values(message="written"))
        inside.set()
        await go_on.wait()

    caller = asyncio.create_task(store.tx.write(slow_write))
    await inside.wait()
    caller.cancel()
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await caller

    assert await _message(store) == "written"


async def test_a_cut_postgresql_connection_is_tried_again(store: JobStore, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("a server-side cut is PostgreSQL's")
    await store.track_job(NewJob(arn=arn(1)), NOW)
    attempts = 0

    async def write(conn: AsyncConnection) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            # The server ends this very session, as a restart or a failover would.
            await conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        await conn.execute(update(bedrock_batch_jobs).values(message=f"attempt {attempts}"))

    await store.tx.write(write)

    assert attempts == 2
    assert await _message(store) == "attempt 2"


async def test_a_constraint_violation_is_not_tried_again(store: JobStore) -> None:
    attempts = 0

    async def write(conn: AsyncConnection) -> None:
        nonlocal attempts
        attempts += 1
        await conn.execute(bedrock_batch_jobs.insert().values(batch_job_arn=arn(1)))

    with pytest.raises(IntegrityError) as raised:
        await store.tx.write(write)

    assert attempts == 1
    assert not is_transient(raised.value)


async def test_sqlite_busy_counts_as_transient(store: JobStore, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's lock")
    database = store.engine.url.database
    assert database is not None
    await store.track_job(NewJob(arn=arn(1)), NOW)
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        impatient = sqlite3.connect(database, timeout=0)
        with pytest.raises(sqlite3.OperationalError) as busy:
            impatient.execute("UPDATE bedrock_batch_jobs SET message = 'x'")
        impatient.close()
    finally:
        holder.rollback()
        holder.close()
    wrapped = DBAPIError("UPDATE", {}, busy.value)

    assert is_transient(wrapped)

"""URL handling and per-connection settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from store_testlib import NOW, PG_URL, arn

from batch_poller.store import NewJob, open_store
from batch_poller.store.engine import (
    SessionLimits,
    idle_in_transaction_for,
    make_engine,
    to_async_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///relative/jobs.db", "sqlite+aiosqlite:///relative/jobs.db"),
        ("sqlite:////abs/path/jobs.db", "sqlite+aiosqlite:////abs/path/jobs.db"),
        (
            "postgresql://user@db.example:5433/jobs",
            "postgresql+asyncpg://user@db.example:5433/jobs",
        ),
        ("postgres://user@db.example/jobs", "postgresql+asyncpg://user@db.example/jobs"),
    ],
)
def test_user_urls_map_to_async_drivers(url: str, expected: str) -> None:
    assert to_async_url(url).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    "url", ["mysql://admin:hunter2@db.example/jobs", "postgresql+psycopg2://admin:hunter2@h/db"]
)
def test_bad_scheme_names_scheme_and_hides_password(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        make_engine(url)
    message = str(caught.value)
    assert url.split("://")[0] in message
    assert "hunter2" not in message
    assert "***" in message


def test_unparseable_url_hides_password() -> None:
    with pytest.raises(ValueError) as caught:
        make_engine("admin:hunter2@db.example/jobs")
    assert "hunter2" not in str(caught.value)


def test_schema_is_refused_for_sqlite(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        make_engine(f"sqlite:///{tmp_path / 'x.db'}", schema="elsewhere")


async def test_sqlite_pragmas_apply_to_every_connection(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        # Two connections at once, so both come from a fresh connect.
        async with engine.connect() as first, engine.connect() as second:
            for conn in (first, second):
                got = [
                    (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                    for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
                ]
                assert got == ["wal", 1, 5000, 1]
    finally:
        await engine.dispose()


async def test_sqlite_transactions_really_roll_back_ddl(tmp_path: Path) -> None:
    # The driver alone would autocommit DDL; migrations rely on this rollback.
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE doomed (x INTEGER)"))
                raise RuntimeError("roll back")
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT count(*) FROM sqlite_master WHERE name = 'doomed'")
            )
            assert found.scalar_one() == 0
    finally:
        await engine.dispose()


async def test_open_store_upgrades_and_closes(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'o.db'}")
    try:
        assert await store.track_job(NewJob(arn=arn(1)), NOW)
        assert (await store.get_job(arn(1))) is not None
    finally:
        await store.close()
    # The file keeps the data across stores.
    again = await open_store(f"sqlite:///{tmp_path / 'o.db'}")
    try:
        assert [j.batch_job_arn for j in await again.list_jobs()] == [arn(1)]
    finally:
        await again.close()


async def test_in_memory_sqlite_keeps_one_database() -> None:
    store = await open_store("sqlite://")
    try:
        await store.track_job(NewJob(arn=arn(2)), NOW)
        assert (await store.get_job(arn(2))) is not None
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("lock_timeout", "expected"),
    [
        (
            30.0,
            {
                "lock_timeout": "30s",
                "idle_in_transaction_session_timeout": "5min",
                "statement_timeout": "5min",
                "tcp_keepalives_idle": "60",
                "tcp_keepalives_interval": "10",
                "tcp_keepalives_count": "6",
                "tcp_user_timeout": "120000",  # milliseconds, as the socket reports it
            },
        ),
        # A lock wait longer than the statement bound: the bound goes a minute above it.
        (600.0, {"lock_timeout": "10min", "statement_timeout": "11min"}),
    ],
)
async def test_postgresql_sessions_carry_their_bounds(
    lock_timeout: float, expected: dict[str, str]
) -> None:
    """What the server reports on a connection make_engine opened. Over TCP it reads the
    keepalive settings and the user timeout back from the socket itself (a Unix socket would
    show 0)."""
    if not PG_URL:
        pytest.skip("BATCH_POLLER_TEST_PG_URL is empty")
    engine = make_engine(PG_URL, limits=SessionLimits(lock_timeout_seconds=lock_timeout))
    try:
        async with engine.connect() as conn:
            shown = {
                name: (await conn.execute(text(f"SHOW {name}"))).scalar_one() for name in expected
            }
    finally:
        await engine.dispose()
    assert shown == expected


@pytest.mark.parametrize(("lease", "idle"), [(6.0, 5.0), (300.0, 150.0), (3600.0, 300.0)])
def test_an_idle_transaction_ends_about_when_a_lease_does(lease: float, idle: float) -> None:
    assert idle_in_transaction_for(lease) == idle

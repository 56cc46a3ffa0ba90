"""Every store test runs against SQLite (a file) and PostgreSQL (a throwaway schema)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from store_testlib import PG_URL, EngineFactory

from batch_poller.store import JobStore, make_engine, upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not PG_URL:
        pytest.skip("BATCH_POLLER_TEST_PG_URL is empty")
    return str(request.param)


@pytest.fixture
async def engine_factory(backend: str, tmp_path: Path) -> AsyncIterator[EngineFactory]:
    """Makes engines on new, empty databases that vanish after the test.

    SQLite: a new file under tmp_path. PostgreSQL: a new schema, made the
    connection's search_path, dropped with CASCADE afterwards.
    """
    engines: list[AsyncEngine] = []
    schemas: list[str] = []
    where: dict[int, str] = {}  # id(engine) -> its file or schema

    async def make(same_as: AsyncEngine | None = None) -> AsyncEngine:
        if same_as is not None:
            place = where[id(same_as)]
        elif backend == "sqlite":
            place = str(tmp_path / f"db{len(engines)}.sqlite")
        else:
            place = f"t_{uuid.uuid4().hex[:16]}"
            await _pg_admin(f'CREATE SCHEMA "{place}"')
            schemas.append(place)
        if backend == "sqlite":
            engine = make_engine(f"sqlite:///{place}")
        else:
            engine = make_engine(PG_URL, schema=place)
        engines.append(engine)
        where[id(engine)] = place
        return engine

    yield make

    for engine in engines:
        await engine.dispose()
    for schema in schemas:
        await _pg_admin(f'DROP SCHEMA "{schema}" CASCADE')


async def _pg_admin(sql: str) -> None:
    url = make_url(PG_URL)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def engine(engine_factory: EngineFactory) -> AsyncEngine:
    return await engine_factory()


@pytest.fixture
async def store(engine: AsyncEngine) -> JobStore:
    await upgrade(engine)
    return JobStore(engine)

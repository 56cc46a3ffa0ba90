"""Fixtures for tests of the daemon: a runtime wired to the emulator, SQLite in tmp_path (or a
new PostgreSQL database), and a fake clock so retries and intervals pass without waiting."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from batch_poller.app import build_supervisor, open_runtime
from batch_poller.config import Settings
from batch_poller.emulator.server import Endpoints
from batch_poller.runtime import Runtime
from batch_poller.supervisor import Supervisor
from batch_poller.tracking import track_jobs
from tests.helpers import BUCKET, create_job, make_records, put_input


class FakeClock:
    """Time that moves only when something sleeps on it, at once."""

    def __init__(self) -> None:
        self.current = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.current += timedelta(seconds=seconds)
        await asyncio.sleep(0)


def daemon_settings(endpoints: Endpoints, database_url: str, **sections: Any) -> Settings:
    base: dict[str, Any] = {
        # No client-side rate limit: tests make bursts of calls on purpose.
        "aws": {
            "bedrock_endpoint_url": endpoints.bedrock,
            "s3_endpoint_url": endpoints.s3,
            "max_calls_per_second": 0,
        },
        "database": {"url": database_url},
        "poller": {"check_interval_seconds": 0, "interval_seconds": 1},
        "pricing": {"amazon.nova-lite-v1:0": {"input_per_1k": "0.03", "output_per_1k": "0.12"}},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Settings(**base)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


PG_ADMIN_URL = os.environ.get(
    "BATCH_POLLER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """SQLite in tmp_path; with indirect parametrization "postgresql", a new database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'batch-poller.db'}"
        return
    name = f"bp_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


BACKENDS = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def make_settings(endpoints: Endpoints, database_url: str) -> Callable[..., Settings]:
    def make(**sections: Any) -> Settings:
        return daemon_settings(endpoints, database_url, **sections)

    return make


@pytest.fixture
async def runtime(
    make_settings: Callable[..., Settings], clock: FakeClock, control: Any
) -> AsyncIterator[Runtime]:
    await control.freeze_clock()
    async with open_runtime(make_settings(), clock=clock) as rt:
        yield rt


@pytest.fixture
def supervisor(runtime: Runtime) -> Supervisor:
    return build_supervisor(runtime)


JobFactory = Callable[..., Any]


@pytest.fixture
def submit(bedrock: Any, s3: Any, runtime: Runtime) -> JobFactory:
    """Creates a job on the emulator from `records` input records and tracks it."""
    counter = 0

    async def make(
        records: int = 10,
        *,
        tags: dict[str, str] | None = None,
        own_input: bool = True,
        model_id: str = "amazon.nova-lite-v1:0",
    ) -> str:
        nonlocal counter
        counter += 1
        folder = f"jobs/job-{counter}/"
        uri = await put_input(
            s3, f"{folder}input.jsonl", make_records(records, prefix=f"j{counter}-")
        )
        arn = await create_job(
            bedrock,
            uri,
            name=f"job-{counter}",
            tags=tags,
            model_id=model_id,
            output_uri=f"s3://{BUCKET}/out/",
        )
        await track_jobs(runtime, [arn], f"s3://{BUCKET}/{folder}" if own_input else None)
        return arn

    return make

"""Shared constants for the store tests (imported by module name: tests/store is on sys.path)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

# Set to "" to run the SQLite half only (the PostgreSQL half is then skipped).
PG_URL = os.environ.get("BATCH_POLLER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

# make() -> engine on a new empty database; make(same_as=e) -> a second engine on e's database.
EngineFactory = Callable[..., Awaitable[AsyncEngine]]

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def arn(n: int) -> str:
    return f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/job{n:09d}"

"""The one place where the store opens transactions: a write survives the cancellation of the
task that asked for it, and a transient failure (a lost PostgreSQL connection, a server
restarting, SQLite busy, a deadlock) is retried with backoff before it becomes an error."""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from batch_poller.store.engine import sqlite_error_code

log = structlog.get_logger("batch_poller.store")
T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
Work = Callable[[AsyncConnection], Awaitable[T]]

ATTEMPTS = 5  # about 3 s of waits in all: a PostgreSQL restart, a short SQLite lock
# SQLSTATE classes worth another try: connection exceptions, the server shutting down or
# starting, serialization failures and deadlocks.
# (Not 57014, a statement timeout: trying again would time out again.)
_TRANSIENT_CLASSES = ("08", "57P", "40")
_SQLITE_TRANSIENT = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def is_transient(error: BaseException) -> bool:
    if isinstance(error, OSError):
        # Refused or reset while connecting: the server is restarting or failing over.
        return True
    if isinstance(error, sqlite3.Error):  # raised by the driver's own bulk write (bulk.py)
        return sqlite_error_code(error) in _SQLITE_TRANSIENT
    if not isinstance(error, DBAPIError):
        # The driver's own error, not wrapped by SQLAlchemy (asyncpg while connecting).
        code = str(getattr(error, "sqlstate", None) or "")
        return code.startswith(_TRANSIENT_CLASSES)
    original = error.orig
    if isinstance(original, sqlite3.Error):
        # Only a lock. A SQLite connection discarded for a read-only or I/O error is not worth
        # another try within the pass: the pass fails, and the whole pool is reopened after it
        # (JobStore.reopen_connections), which a retry holding connections would put off.
        return sqlite_error_code(original) in _SQLITE_TRANSIENT
    if error.connection_invalidated:
        return True
    code = str(getattr(original, "sqlstate", None) or "")
    if code.startswith(_TRANSIENT_CLASSES):
        return True
    cause = getattr(original, "__cause__", None)
    return isinstance(cause, OSError | ConnectionError)


class Transactions:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def write(self, work: Work[T]) -> T:
        """Runs `work` in one transaction that commits even if the caller is cancelled: the
        state it records (results stored, a folder deleted) must not be lost half-way."""
        task = asyncio.ensure_future(self._retried(work, write=True))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await task
            raise

    async def read(self, work: Work[T]) -> T:
        return await self._retried(work, write=False)

    async def _retried(self, work: Work[T], *, write: bool) -> T:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(ATTEMPTS),
            wait=wait_exponential(multiplier=0.2, max=2),
            before_sleep=_log_retry,
            reraise=True,
        ):
            with attempt:
                if write:
                    async with self.engine.begin() as conn:
                        return await work(conn)
                async with self.engine.connect() as conn:
                    return await work(conn)
        raise AssertionError("AsyncRetrying returns or raises")


class Coalesced(Generic[K, V, T]):
    """Writes asked for at once, made together: the first starts a write at once, and those
    asked for while it runs wait for it and go, all of them, into the next (group commit). No
    write waits for company, so one alone costs what it did; many at once cost one write a
    round instead of one each. `write_all` writes a round in one transaction (Transactions.write)
    and answers each key with its result, or the exception for that key alone; an exception it
    raises is every caller's of the round. A caller's cancellation leaves its round to finish,
    as Transactions.write does."""

    def __init__(self, write_all: Callable[[dict[K, V]], Awaitable[Mapping[K, T | Exception]]]):
        self._write_all = write_all
        self._waiting: list[tuple[K, V, asyncio.Future[T]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, key: K, value: V) -> T:
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, value, done))
        if self._writer is None or self._writer.done():
            # In a context of its own: a round is no one caller's (the log's bound job_arn).
            loop = asyncio.get_running_loop()
            self._writer = loop.create_task(self._write_rounds(), context=contextvars.Context())
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            if not done.done():
                await asyncio.wait([done])
            raise

    async def _write_rounds(self) -> None:
        while self._waiting:
            # A key asked for twice waits for the next round: a round writes each key once.
            round_: dict[K, tuple[V, asyncio.Future[T]]] = {}
            later = []
            for key, value, done in self._waiting:
                if key in round_:
                    later.append((key, value, done))
                else:
                    round_[key] = (value, done)
            self._waiting = later
            try:
                results = await self._write_all({k: value for k, (value, _) in round_.items()})
            except Exception as error:  # every caller's
                for _, done in round_.values():
                    done.set_exception(error)
                continue
            except BaseException:  # cancelled (the loop is closing): so are the callers
                for _, done in round_.values():
                    done.cancel()
                raise
            for key, (_, done) in round_.items():
                result = results[key]
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(result)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "database_retry",
        attempt=state.attempt_number,
        error=type(error).__name__ if error else None,
        detail="a transient database failure; trying again",
    )

"""Opening the store when the daemon starts. A configuration mistake (a scheme it does not
support, a role, password or database that does not exist, a folder that is not there) is told
apart from a database that is merely busy or down, which is waited for: a daemon started
before its database, or beside a long writer, comes up once the database does."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from batch_poller.masking import mask_url
from batch_poller.store.engine import SessionLimits, sqlite_error_code, sqlite_file, to_async_url
from batch_poller.store.errors import database_message, describe_database_error
from batch_poller.store.jobs import JobStore, open_store

# SQLite codes that pass: another writer, a read-only or full file system, a file not there yet.
_SQLITE_TRANSIENT = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
# PostgreSQL SQLSTATE classes of a server that is down, starting, stopping or full.
_PG_TRANSIENT_CLASSES = ("08", "53", "57")
# ... and those of a mistake in the URL: authorization, an unknown database, no privilege.
_PG_CONFIG_CODES = ("28", "3D000", "42501")


class DatabaseConfigError(Exception):
    """The database cannot be used as configured; one line that names the problem."""


class DatabaseUnavailableError(Exception):
    """The database did not answer within the attempts allowed; one line naming the last error."""


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts: base, doubling, never more than the cap."""

    base_seconds: float
    max_seconds: float

    def delay(self, attempt: int) -> float:
        return float(min(self.max_seconds, self.base_seconds * 2 ** min(attempt - 1, 30)))


# Told of each failed attempt: its number, what failed, and the wait before the next one.
OnUnavailable = Callable[[int, str, float], None]


async def open_store_when_available(
    url: str,
    *,
    backoff: Backoff,
    stopping: asyncio.Event,
    on_unavailable: OnUnavailable,
    limits: SessionLimits,
    max_attempts: int | None = None,
) -> JobStore | None:
    """The migrated store, once the database answers; None when `stopping` is set first.

    Raises DatabaseConfigError for a mistake no wait would mend, and DatabaseUnavailableError
    after `max_attempts` failed attempts (None: wait as long as it takes).
    """
    check_sqlite_folder(url)
    attempt = 0
    while not stopping.is_set():
        attempt += 1
        opening = asyncio.ensure_future(open_store(url, limits=limits))
        if not await _first_of(opening, stopping):
            return None
        error = opening.exception()
        if error is None:
            return opening.result()
        if is_configuration_error(error):
            raise DatabaseConfigError(
                f"cannot use the database {mask_url(url)}: {database_message(error)}"
            ) from None
        description = describe_database_error("open the database", error)
        if not is_unavailable(error):
            raise error
        if max_attempts is not None and attempt >= max_attempts:
            raise DatabaseUnavailableError(
                f"gave up opening the database {mask_url(url)} after {attempt} attempts: "
                f"{description}"
            ) from None
        delay = backoff.delay(attempt)
        on_unavailable(attempt, description, delay)
        if not await _first_of(asyncio.ensure_future(asyncio.sleep(delay)), stopping):
            return None
    return None


async def _first_of(work: asyncio.Future[Any], stopping: asyncio.Event) -> bool:
    """Waits for `work`; False (and `work` cancelled and finished) when stopping comes first."""
    stop: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if work.done():
        return True
    work.cancel()
    # A SQLite statement waiting for a lock ends within the busy timeout; its connection
    # must be closed before the process exits, or its worker thread keeps the process alive.
    await asyncio.gather(work, return_exceptions=True)
    return False


def check_sqlite_folder(url: str) -> None:
    """SQLite creates the file, never its folder: a folder that is not there is a mistake."""
    try:
        parsed = to_async_url(url)
    except ValueError as error:
        raise DatabaseConfigError(str(error)) from None
    path = sqlite_file(parsed)
    if path is None:
        return
    folder = Path(path).parent
    if not folder.is_dir():
        raise DatabaseConfigError(f"the database folder {folder} does not exist")


def missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file the URL names, when it is not there; None otherwise (or not SQLite)."""
    try:
        parsed = to_async_url(url)
    except ValueError:
        return None
    path = sqlite_file(parsed)
    return None if path is None or Path(path).exists() else Path(path)


def _underlying(error: BaseException) -> BaseException:
    """The error a store call wrapped, if it did (StoreError keeps it as `original`)."""
    original = getattr(error, "original", None)
    return original if isinstance(original, BaseException) else error


def _sqlstate(error: BaseException) -> str | None:
    orig = getattr(error, "orig", None)
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    return code if isinstance(code, str) else None


def is_configuration_error(error: BaseException) -> bool:
    error = _underlying(error)
    if isinstance(error, ValueError):  # an unsupported or unparseable URL
        return True
    if isinstance(error, RuntimeError) and "schema version" in str(error):
        return True  # a database migrated by a newer release
    state = _sqlstate(error)
    if state is not None and state.startswith(_PG_CONFIG_CODES):
        return True
    code = sqlite_error_code(getattr(error, "orig", error))
    return code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT)


def is_unavailable(error: BaseException) -> bool:
    error = _underlying(error)
    if isinstance(error, OSError | TimeoutError):  # refused, unreachable, no such host
        return True
    if not isinstance(error, DBAPIError):
        return False
    code = sqlite_error_code(error.orig) if error.orig is not None else None
    if code is not None:
        return code in _SQLITE_TRANSIENT
    state = _sqlstate(error)
    if state is not None:
        return state.startswith(_PG_TRANSIENT_CLASSES)
    # A driver error without a code: the connection itself failed.
    return isinstance(error, OperationalError | InterfaceError) or error.connection_invalidated

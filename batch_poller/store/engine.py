"""Engine creation and the few places where SQLite and PostgreSQL differ."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from batch_poller.database_url import ASYNC_DRIVERS
from batch_poller.masking import mask_url

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql

_SQLITE_PRAGMAS = (
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
# Switching a database to WAL needs an exclusive lock, and SQLite answers "database is locked"
# at once, without its busy handler, while another connection holds any lock: two processes
# opening a new database together collide there. The switch is persistent, so it is tried only
# while the file is not yet in WAL, again after a short pause, for at most the busy timeout.
_WAL_RETRY_PAUSE_SECONDS = 0.02
# How long a statement waits for another writer's lock before it fails "database is locked".
DEFAULT_BUSY_TIMEOUT_SECONDS = 5.0
# PostgreSQL: how long a statement waits for a lock another session holds (lock_timeout).
# Without it a session that holds a lock and never ends stalls the daemon with no error.
DEFAULT_LOCK_TIMEOUT_SECONDS = 30.0
# PostgreSQL: our own transaction left open and idle this long is ended by the server, so a
# stalled process of ours cannot hold locks that stop every other daemon sharing the database.
# None of our transactions waits on anything outside the database, so this is never reached
# in normal work.
IDLE_IN_TRANSACTION_SECONDS = 300.0
# PostgreSQL: a statement running this long is cancelled by the server (statement_timeout), so a
# statement of a frozen process of ours cannot hold its row locks forever either. It must stay
# above any statement we run: the longest are a batch upsert of [results] batch_size rows, a
# job's record counts or record ids, and the migrations (columns added, an index on the jobs
# table), seconds at most. A migration that rewrites batch_records would need a SET LOCAL of its
# own. A statement's wait for a lock counts too, so the bound is stretched above a longer
# [database] lock_timeout_seconds: that wait must end as a lock timeout, logged and retried.
STATEMENT_TIMEOUT_SECONDS = 300.0
_STATEMENT_ABOVE_LOCK_WAIT_SECONDS = 60.0
# PostgreSQL: the server's TCP keepalive and user timeout on our connections (GUCs set per
# session), so the server notices a client host that vanished (power cut, network cut) and ends
# its session and transaction: an idle connection is probed after 60 s of silence, every 10 s,
# and dropped after 6 unanswered probes (2 minutes); data the server sent that stays
# unacknowledged for 2 minutes drops the connection too. A process that is frozen on a live
# host still has its kernel answer: idle_in_transaction_session_timeout and statement_timeout
# bound it.
TCP_KEEPALIVES_IDLE_SECONDS = 60
TCP_KEEPALIVES_INTERVAL_SECONDS = 10
TCP_KEEPALIVES_COUNT = 6
TCP_USER_TIMEOUT_SECONDS = 120.0

# Execution option asking for BEGIN IMMEDIATE on SQLite: a transaction that reads
# before it writes (the migrations) must hold the write lock from the start, or
# two processes can both read "version 0" and then collide.
SQLITE_BEGIN_IMMEDIATE = "batch_poller_begin_immediate"

# SQLite primary result codes after which a connection cannot be trusted again. A connection
# opened while its folder or file system was read-only stays read-only for its whole life;
# one that saw an I/O error or could not open a file may hold a broken file handle. Reopening
# is cheap, so such a connection is discarded and the next checkout opens a fresh one.
SQLITE_DISCARD_CODES = frozenset(
    {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN}
)


def to_async_url(url: str) -> URL:
    """Parse a user URL and point it at the async driver, or raise ValueError."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"cannot parse database URL {mask_url(url)!r}") from None
    driver = ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        shown = mask_url(url)
        raise ValueError(
            f"unsupported database URL {shown!r}: scheme {parsed.drivername!r} is not "
            "sqlite:// or postgresql://"
        )
    return parsed.set(drivername=driver)


def sqlite_file(url: URL) -> str | None:
    """The file a SQLite URL names; None for PostgreSQL or an in-memory database."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


@dataclass(frozen=True)
class SessionLimits:
    """How long a database session of ours waits or may sit idle.

    ``busy_timeout_seconds`` (SQLite only): a statement's wait for another writer's lock.
    ``lock_timeout_seconds`` (PostgreSQL only): the same for another session's lock.
    ``idle_in_transaction_seconds`` (PostgreSQL only): a transaction of ours left open that long
    with no statement is ended by the server (a frozen process's row locks go with it).
    """

    busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS
    idle_in_transaction_seconds: float = IDLE_IN_TRANSACTION_SECONDS


def idle_in_transaction_for(lease_seconds: float) -> float:
    """Half a lease, at least 5 s, at most IDLE_IN_TRANSACTION_SECONDS: a replica frozen inside
    a transaction keeps its jobs' rows locked (claims skip locked rows), so its transaction must
    end about when its lease does, or its jobs wait longer than the lease promises."""
    return max(5.0, min(IDLE_IN_TRANSACTION_SECONDS, lease_seconds / 2))


def make_engine(
    url: str, *, schema: str | None = None, limits: SessionLimits | None = None
) -> AsyncEngine:
    """An AsyncEngine for a sqlite:// or postgresql:// URL.

    ``schema`` (PostgreSQL only) becomes the connection's search_path, so every
    unqualified table lives there; the tests use it to isolate themselves.
    """
    limits = limits or SessionLimits()
    async_url = to_async_url(url)
    if async_url.get_backend_name() == "sqlite":
        if schema is not None:
            raise ValueError("schema is only supported for PostgreSQL")
        return _sqlite_engine(async_url, round(limits.busy_timeout_seconds * 1000))
    lock_timeout_seconds = limits.lock_timeout_seconds
    server_settings = {
        "lock_timeout": _milliseconds(lock_timeout_seconds),
        "idle_in_transaction_session_timeout": _milliseconds(limits.idle_in_transaction_seconds),
        "statement_timeout": _milliseconds(statement_timeout_seconds(lock_timeout_seconds)),
        "tcp_keepalives_idle": str(TCP_KEEPALIVES_IDLE_SECONDS),
        "tcp_keepalives_interval": str(TCP_KEEPALIVES_INTERVAL_SECONDS),
        "tcp_keepalives_count": str(TCP_KEEPALIVES_COUNT),
        "tcp_user_timeout": _milliseconds(TCP_USER_TIMEOUT_SECONDS),
    }
    if schema is not None:
        server_settings["search_path"] = schema
    connect_args: dict[str, Any] = {"server_settings": server_settings}
    # hide_parameters: a failed statement's text must never carry record contents.
    return create_async_engine(
        async_url, connect_args=connect_args, pool_pre_ping=True, hide_parameters=True
    )


def statement_timeout_seconds(lock_timeout_seconds: float) -> float:
    """PostgreSQL's statement_timeout for a lock_timeout: STATEMENT_TIMEOUT_SECONDS, or a minute
    above a longer lock wait."""
    return max(STATEMENT_TIMEOUT_SECONDS, lock_timeout_seconds + _STATEMENT_ABOVE_LOCK_WAIT_SECONDS)


def _milliseconds(seconds: float) -> str:
    # At least 1 ms: PostgreSQL reads 0 as "wait forever".
    return str(max(1, round(seconds * 1000)))


def _sqlite_engine(url: URL, busy_timeout_ms: int) -> AsyncEngine:
    in_memory = sqlite_file(url) is None
    # An in-memory database exists once per connection, so share one connection.
    extra: dict[str, Any] = {"poolclass": StaticPool} if in_memory else {}
    engine = create_async_engine(url, hide_parameters=True, **extra)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver: its implicit BEGIN skips DDL and
        # cannot be IMMEDIATE. _on_begin below emits ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        _switch_to_wal(cursor, busy_timeout_ms / 1000)
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(SQLITE_BEGIN_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    if not in_memory:  # the one shared in-memory connection is the database: never discard it
        event.listen(engine.sync_engine, "handle_error", discard_broken_sqlite_connection)
    return engine


def _switch_to_wal(cursor: sqlite3.Cursor, patience_seconds: float) -> None:
    deadline = time.monotonic() + patience_seconds
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() in ("wal", "memory"):
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if sqlite_error_code(exc) != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        # A blocking pause is right here: this runs on the driver's own thread, not the loop.
        time.sleep(_WAL_RETRY_PAUSE_SECONDS)


def discard_broken_sqlite_connection(context: ExceptionContext) -> None:
    """Treats a connection that failed read-only, with an I/O error or unable to open a file as
    disconnected: the pool closes it and every connection opened before it, so none opened
    during a read-only episode outlives it."""
    if sqlite_error_code(context.original_exception) in SQLITE_DISCARD_CODES:
        context.is_disconnect = True


def sqlite_error_code(error: BaseException) -> int | None:
    """The primary result code of a sqlite3 error (extended codes carry it in the low byte)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def dialect_insert(dialect_name: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    """INSERT with on_conflict_do_update/do_nothing; both dialects spell it alike."""
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    if dialect_name == "postgresql":
        # Imported here: a SQLite store never loads the PostgreSQL dialect (3 MB).
        from sqlalchemy.dialects import postgresql as pg

        return pg.insert(table)
    raise ValueError(f"unsupported dialect {dialect_name!r}")

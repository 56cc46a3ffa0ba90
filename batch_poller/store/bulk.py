"""Record rows written through the database's own driver, as fast as it takes them: one
`executemany` of plain tuples on SQLite; on PostgreSQL a COPY, or where a row is stored already
one `INSERT ... SELECT FROM unnest(arrays)`. SQLAlchemy's parameter processing per row cost
more than the database's own work; these paths keep its semantics (the same upsert, the same
ids refused) without it.

Both run inside the caller's SQLAlchemy transaction, on its connection, after the lease fence
written in it: the fence and the rows commit together, or not at all."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import StaticPool

from batch_poller.rows import RecordRow
from batch_poller.store.engine import SQLITE_DISCARD_CODES, sqlite_error_code
from batch_poller.store.tables import batch_records as _RECORDS

_FIELDS = RecordRow._fields
_COLUMNS = ("batch_job_arn", *_FIELDS, "stored_at")
_KEY = ("batch_job_arn", "record_id")
_REPLACED = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in _KEY)
# A record written again from the same file and line replaces the stored one (a resumed
# ingest); one whose id another line holds is left alone, and told apart afterwards.
_SQLITE_UPSERT = (
    f"INSERT INTO batch_records ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    f" ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {_REPLACED}"
    " WHERE batch_records.source_file IS excluded.source_file"
    " AND batch_records.line_number IS excluded.line_number"
)


@functools.cache
def _pg_upsert() -> str:
    """The PostgreSQL upsert of arrays, made when first needed: a SQLite store never loads the
    PostgreSQL dialect."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    types = {c.name: c.type.compile(dialect=dialect) for c in _RECORDS.c}
    return (
        f"INSERT INTO batch_records ({', '.join(_COLUMNS)})"
        " SELECT * FROM unnest("
        + ", ".join(f"${n}::{types[c]}[]" for n, c in enumerate(_COLUMNS, start=1))
        + f") ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {_REPLACED}"
        " WHERE batch_records.source_file IS NOT DISTINCT FROM excluded.source_file"
        " AND batch_records.line_number IS NOT DISTINCT FROM excluded.line_number"
        " RETURNING record_id"
    )


def _tuples(
    conn: AsyncConnection, arn: str, now: datetime, rows: Sequence[RecordRow]
) -> list[tuple[Any, ...]]:
    """The rows as the driver takes them, converted as SQLAlchemy's column types would for
    this database (its own DATETIME text on SQLite, for one)."""
    dialect = conn.dialect
    stamp = _RECORDS.c.stored_at.type.dialect_impl(dialect).bind_processor(dialect)
    stored_at = stamp(now) if stamp else now
    money = _RECORDS.c.cost.type.dialect_impl(dialect).bind_processor(dialect)
    out = [(arn, *row, stored_at) for row in rows]
    if money is not None:  # only priced models have a cost
        for n, row in enumerate(rows):
            if row.cost is not None:
                out[n] = (arn, *row._replace(cost=money(row.cost)), stored_at)
    return out


async def sqlite_upsert(
    conn: AsyncConnection, arn: str, now: datetime, rows: Sequence[RecordRow]
) -> set[str]:
    """Writes the rows; returns the record ids refused (another line holds them). The count
    of changes tells whether every row was written, the usual case, unless a trigger on the
    table may have added changes of its own; otherwise, and whenever the count is short, the
    ids are read back to tell which."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None, "an open connection has its driver's"
    before = driver.total_changes
    try:
        await driver.executemany(_SQLITE_UPSERT, _tuples(conn, arn, now, rows))
    except sqlite3.Error as error:
        if sqlite_error_code(error) in SQLITE_DISCARD_CODES:
            await _discard(conn)
        raise
    counted = driver.total_changes - before == len(rows)
    if counted and not await driver.execute_fetchall(_TRIGGERS):
        return set()
    origins = {row.record_id: (row.source_file, row.line_number) for row in rows}
    refused = set(origins)
    listed = list(origins)
    for start in range(0, len(listed), 500):  # within SQLite's limit on parameters
        chunk = listed[start : start + 500]
        found = await driver.execute_fetchall(
            "SELECT record_id, source_file, line_number FROM batch_records"
            f" WHERE batch_job_arn = ? AND record_id IN ({', '.join('?' * len(chunk))})",
            (arn, *chunk),
        )
        refused.difference_update(rid for rid, file, line in found if origins[rid] == (file, line))
    return refused


_TRIGGERS = "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'batch_records'"


async def _discard(conn: AsyncConnection) -> None:
    """As engine.discard_broken_sqlite_connection does for SQLAlchemy's own statements: a
    connection that met a read-only or I/O error is not given out again, nor any opened before
    it (a new pool replaces the old one). An in-memory database is its one connection: kept."""
    if isinstance(conn.engine.sync_engine.pool, StaticPool):
        return
    await conn.invalidate()
    await conn.engine.dispose(close=False)


async def postgres_upsert(
    conn: AsyncConnection, arn: str, now: datetime, rows: Sequence[RecordRow]
) -> set[str]:
    """Writes the rows; returns the record ids refused (another line holds them).

    A job's records are nearly always new: they are COPYed straight into the table, the
    database's fastest way in. Where one of them is stored already (a resumed ingest, an id
    another line holds), the COPY fails whole, inside a savepoint, and the rows go to the
    upsert instead, one array a column, whose RETURNING tells the ids written."""
    import asyncpg  # type: ignore[import-untyped]  # the postgres extra, loaded only here

    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None, "an open connection has its driver's"
    tuples = _tuples(conn, arn, now, rows)
    await driver.execute("SAVEPOINT batch_records_copy")
    try:
        await driver.copy_records_to_table("batch_records", records=tuples, columns=_COLUMNS)
    except asyncpg.UniqueViolationError:
        await driver.execute("ROLLBACK TO SAVEPOINT batch_records_copy")
    else:
        await driver.execute("RELEASE SAVEPOINT batch_records_copy")
        return set()
    columns = list(zip(*tuples, strict=True))
    written = await driver.fetch(_pg_upsert(), *(list(column) for column in columns))
    return {row.record_id for row in rows}.difference(record["record_id"] for record in written)

"""Record rows written through the database's own driver, as fast as it takes them: one
`executemany` of plain tuples on SQLite, COPY into a staging table and one upsert on PostgreSQL.
SQLAlchemy's parameter processing per row cost more than the database's own work; these paths
keep its semantics (the same upsert, the same ids refused) without it.

Both run inside the caller's SQLAlchemy transaction, on its connection: the lease fence written
before them and the rows commit together, or not at all."""

from __future__ import annotations

import dataclasses
import operator
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from batch_poller.rows import RecordRow
from batch_poller.store.engine import SQLITE_DISCARD_CODES, sqlite_error_code
from batch_poller.store.tables import batch_records as _RECORDS

_FIELDS = tuple(f.name for f in dataclasses.fields(RecordRow))
_COLUMNS = ("batch_job_arn", *_FIELDS, "stored_at")
# A row's fields in one call, as a tuple: a getattr per field cost more than the write.
_VALUES = operator.attrgetter(*_FIELDS)
_KEY = ("batch_job_arn", "record_id")
# A record written again from the same file and line replaces the stored one (a resumed
# ingest); one whose id another line holds is left alone, and found afterwards.
_SQLITE_UPSERT = (
    f"INSERT INTO batch_records ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    f" ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in _KEY)
    + " WHERE batch_records.source_file IS excluded.source_file"
    " AND batch_records.line_number IS excluded.line_number"
)


def _tuples(
    conn: AsyncConnection, arn: str, now: datetime, rows: Sequence[RecordRow]
) -> list[tuple[Any, ...]]:
    """The rows as the driver takes them, converted as SQLAlchemy's column types would."""
    dialect = conn.dialect
    stamp = _RECORDS.c.stored_at.type.bind_processor(dialect)
    stored_at = stamp(now) if stamp else now
    money = _RECORDS.c.cost.type.bind_processor(dialect)
    cost_at = _FIELDS.index("cost") + 1
    out = [(arn, *_VALUES(row), stored_at) for row in rows]
    if money is not None:  # rare: only priced models have a cost
        for n, values in enumerate(out):
            if values[cost_at] is not None:
                out[n] = (*values[:cost_at], money(values[cost_at]), *values[cost_at + 1 :])
    return out


async def sqlite_upsert(
    conn: AsyncConnection, arn: str, now: datetime, rows: Sequence[RecordRow]
) -> set[str]:
    """Writes the rows; returns the record ids written (a row whose id another line holds is
    not). The count of changes tells whether every row was written, the usual case; only
    when some were not are the ids read back to tell which."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None, "an open connection has its driver's"
    before = driver.total_changes
    try:
        await driver.executemany(_SQLITE_UPSERT, _tuples(conn, arn, now, rows))
    except sqlite3.Error as error:
        # As engine.discard_broken_sqlite_connection does for SQLAlchemy's own statements: a
        # connection that met a read-only or I/O error is not given out again.
        if sqlite_error_code(error) in SQLITE_DISCARD_CODES:
            await conn.invalidate()
        raise
    ids = {row.record_id for row in rows}
    if driver.total_changes - before == len(rows):
        return ids
    origins = {row.record_id: (row.source_file, row.line_number) for row in rows}
    written: set[str] = set()
    listed = list(ids)
    for start in range(0, len(listed), 500):  # within SQLite's limit on parameters
        chunk = listed[start : start + 500]
        found = await driver.execute_fetchall(
            "SELECT record_id, source_file, line_number FROM batch_records"
            f" WHERE batch_job_arn = ? AND record_id IN ({', '.join('?' * len(chunk))})",
            (arn, *chunk),
        )
        written.update(rid for rid, file, line in found if origins[rid] == (file, line))
    return written


_PG_STAGING = "batch_records_incoming"
_PG_UPSERT = (
    f"INSERT INTO batch_records ({', '.join(_COLUMNS)})"
    f" SELECT {', '.join(_COLUMNS)} FROM {_PG_STAGING}"
    f" ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in _KEY)
    + " WHERE batch_records.source_file IS NOT DISTINCT FROM excluded.source_file"
    " AND batch_records.line_number IS NOT DISTINCT FROM excluded.line_number"
    " RETURNING record_id"
)


async def postgres_upsert(
    conn: AsyncConnection, arn: str, now: datetime, rows: Sequence[RecordRow]
) -> set[str]:
    """COPY into a staging table of this session, then one upsert from it; returns the record
    ids written (RETURNING tells them: a row whose id another line holds is not among them).
    The staging table empties itself when the transaction ends."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None, "an open connection has its driver's"
    await driver.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_PG_STAGING}"
        " (LIKE batch_records INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    await driver.copy_records_to_table(
        _PG_STAGING, records=_tuples(conn, arn, now, rows), columns=list(_COLUMNS)
    )
    written = await driver.fetch(_PG_UPSERT)
    return {record["record_id"] for record in written}

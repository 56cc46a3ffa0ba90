"""Numbered schema migrations, each applied in its own transaction.

Migrations are frozen snapshots: they never import the current tables, so
changing tables.py later cannot silently rewrite history. A new change is a new
function appended to MIGRATIONS (and tables.SCHEMA_VERSION bumped).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateColumn

from batch_poller.store.engine import SQLITE_BEGIN_IMMEDIATE
from batch_poller.store.tables import SCHEMA_VERSION, UTCDateTime

Migration = Callable[[Connection], None]

# Any constant will do; it only has to be the same in every process.
_PG_LOCK_KEY = 0x6261746368  # "batch"


def _schema_version_table(md: MetaData) -> Table:
    return Table(
        "schema_version", md, Column("version", Integer, primary_key=True, autoincrement=False)
    )


def _m1_initial(conn: Connection) -> None:
    """The first release: no cleanup accounting yet."""
    md = MetaData()
    Table(
        "bedrock_batch_jobs",
        md,
        Column("batch_job_arn", Text, primary_key=True),
        Column("job_id", Text, nullable=False),
        Column("job_name", Text),
        Column("model_id", Text),
        Column("status", Text, nullable=False),
        Column("bedrock_status", Text),
        Column("message", Text),
        Column("input_s3_uri", Text),
        Column("s3_folder", Text),
        Column("output_s3_prefix", Text),
        Column("submitted_at", UTCDateTime),
        Column("last_checked_at", UTCDateTime),
        Column("completed_at", UTCDateTime),
        Column("results_fetched_at", UTCDateTime),
        Column("results_fetch_attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text),
        Column("cleanup_completed_at", UTCDateTime),
        Column("total_records", Integer),
        Column("success_records", Integer),
        Column("error_records", Integer),
        Column("input_tokens", BigInteger),
        Column("output_tokens", BigInteger),
        Column("cost", Numeric(18, 8)),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Index("ix_bedrock_batch_jobs_status_checked", "status", "last_checked_at"),
        Index("ix_bedrock_batch_jobs_job_id", "job_id"),
    )
    Table(
        "batch_records",
        md,
        Column(
            "batch_job_arn",
            Text,
            ForeignKey("bedrock_batch_jobs.batch_job_arn", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("record_id", Text, primary_key=True),
        Column("outcome", Text, nullable=False),
        Column("model_output", Text),
        Column("model_input", Text),
        Column("error_code", Text),
        Column("error_message", Text),
        Column("source_file", Text),
        Column("line_number", Integer),
        Column("input_tokens", Integer),
        Column("output_tokens", Integer),
        Column("cost", Numeric(18, 8)),
        Column("stored_at", UTCDateTime, nullable=False),
        CheckConstraint("outcome IN ('ok', 'error')", name="ck_batch_records_outcome"),
    )
    _schema_version_table(md)
    md.create_all(conn)


def _m2_cleanup_accounting(conn: Connection) -> None:
    """Count cleanup retries and the bytes a cleanup freed."""
    _add_columns(
        conn,
        "bedrock_batch_jobs",
        Column("cleanup_attempts", Integer, nullable=False, server_default="0"),
        Column("bytes_freed", BigInteger),
    )


def _add_columns(conn: Connection, table_name: str, *columns: Column[object]) -> None:
    # Core has no ALTER TABLE; CreateColumn renders the same column clause
    # CREATE TABLE would, so the result matches a fresh create_all exactly.
    table = Table(table_name, MetaData(), *columns)
    preparer = conn.dialect.identifier_preparer
    for column in columns:
        clause = CreateColumn(column).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {clause}")


def _m3_raw_text(conn: Connection) -> None:
    """Keep the raw text of a line that could not be parsed, so nothing is lost with it."""
    _add_columns(conn, "batch_records", Column("raw_text", Text))


def _m4_leases(conn: Connection) -> None:
    """Who works on a job until when, so that several daemons can share one database."""
    _add_columns(
        conn,
        "bedrock_batch_jobs",
        Column("claimed_by", Text),
        Column("claimed_until", UTCDateTime),
    )


def _m5_fetch_retries_and_raw_bytes(conn: Connection) -> None:
    """Retry failed fetches by themselves; keep the exact bytes of lines text cannot hold."""
    _add_columns(
        conn,
        "bedrock_batch_jobs",
        Column("fetch_failures", Integer, nullable=False, server_default="0"),
        Column("fetch_retry_at", UTCDateTime),
    )
    _add_columns(conn, "batch_records", Column("raw_bytes", LargeBinary))


def _m6_replicas(conn: Connection) -> None:
    """The processes sharing the database, each with its heartbeat; leases found by owner."""
    md = MetaData()
    Table(
        "replicas",
        md,
        Column("owner", Text, primary_key=True),
        Column("host", Text, nullable=False),
        Column("pid", Integer, nullable=False),
        Column("local_key", Text, nullable=False),
        Column("role", Text, nullable=False),
        Column("started_at", UTCDateTime, nullable=False),
        Column("seen_at", UTCDateTime, nullable=False),
        Column("last_pass_at", UTCDateTime),
    )
    md.create_all(conn)
    jobs = Table("bedrock_batch_jobs", MetaData(), Column("claimed_by", Text))
    Index("ix_bedrock_batch_jobs_claimed_by", jobs.c.claimed_by).create(conn)


def _m7_groups_and_outbox(conn: Connection) -> None:
    """Groups of jobs compiled as one, the outbox of events for hooks, records by id."""
    _add_columns(
        conn,
        "bedrock_batch_jobs",
        Column("group_name", Text),
        Column("group_compiled_at", UTCDateTime),
    )
    jobs = Table("bedrock_batch_jobs", MetaData(), Column("group_name", Text))
    Index("ix_bedrock_batch_jobs_group_name", jobs.c.group_name).create(conn)
    records = Table("batch_records", MetaData(), Column("record_id", Text))
    Index("ix_batch_records_record_id", records.c.record_id).create(conn)
    key = BigInteger().with_variant(Integer, "sqlite")
    md = MetaData()
    Table(
        "job_groups",
        md,
        Column("name", Text, primary_key=True),
        Column("status", Text, nullable=False),
        Column("sealed_at", UTCDateTime),
        Column("compiled_at", UTCDateTime),
        Column("jobs", Integer),
        Column("failed_jobs", Integer),
        Column("total_records", BigInteger),
        Column("success_records", BigInteger),
        Column("error_records", BigInteger),
        Column("input_tokens", BigInteger),
        Column("output_tokens", BigInteger),
        Column("cost", Numeric(18, 8)),
        Column("first_submitted_at", UTCDateTime),
        Column("last_completed_at", UTCDateTime),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )
    Table(
        "events",
        md,
        Column("id", key, primary_key=True, autoincrement=True),
        Column("event_id", Text, nullable=False),
        Column("type", Text, nullable=False),
        Column("batch_job_arn", Text),
        Column("group_name", Text),
        Column("payload", Text, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Index("uq_events_event_id", "event_id", unique=True),
    )
    Table(
        "hook_deliveries",
        md,
        Column("id", key, primary_key=True, autoincrement=True),
        Column("event", key, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
        Column("hook", Text, nullable=False),
        Column("state", Text, nullable=False),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", UTCDateTime, nullable=False),
        Column("last_error", Text),
        Column("delivered_at", UTCDateTime),
        Column("claimed_by", Text),
        Column("claimed_until", UTCDateTime),
        Column("updated_at", UTCDateTime, nullable=False),
        CheckConstraint(
            "state IN ('pending', 'delivered', 'dead')", name="ck_hook_deliveries_state"
        ),
        Index("ix_hook_deliveries_due", "hook", "state", "next_attempt_at"),
        Index("uq_hook_deliveries_event_hook", "event", "hook", unique=True),
    )
    md.create_all(conn)


def _m8_progress(conn: Connection) -> None:
    """Bedrock's record counts of a running job: its progress."""
    _add_columns(
        conn,
        "bedrock_batch_jobs",
        Column("progress_processed", Integer),
        Column("progress_total", Integer),
    )


def _m9_submissions(conn: Connection) -> None:
    """Jobs this project submits, recorded before they are created; a job that runs again
    another's records names it."""
    _add_columns(conn, "bedrock_batch_jobs", Column("retries_of", Text))
    Table(
        "submissions",
        MetaData(),
        Column("client_token", Text, primary_key=True),
        Column("job_name", Text, nullable=False),
        Column("model_id", Text, nullable=False),
        Column("role_arn", Text, nullable=False),
        Column("input_uri", Text, nullable=False),
        Column("output_uri", Text, nullable=False),
        Column("input_folder", Text, nullable=False),
        Column("timeout_hours", Integer),
        Column("tags", Text, nullable=False),
        Column("group_name", Text),
        Column("retries_of", Text),
        Column("seals_group", Integer, nullable=False, server_default="0"),
        Column("state", Text, nullable=False),
        Column("batch_job_arn", Text),
        Column("last_error", Text),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        CheckConstraint(
            "state IN ('queued', 'creating', 'tracked', 'refused')", name="ck_submissions_state"
        ),
        Index("ix_submissions_state", "state", "created_at"),
    ).create(conn)


MIGRATIONS: Sequence[Migration] = (
    _m1_initial,
    _m2_cleanup_accounting,
    _m3_raw_text,
    _m4_leases,
    _m5_fetch_retries_and_raw_bytes,
    _m6_replicas,
    _m7_groups_and_outbox,
    _m8_progress,
    _m9_submissions,
)
assert len(MIGRATIONS) == SCHEMA_VERSION, "tables.SCHEMA_VERSION must follow MIGRATIONS"


def _read_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_version"):
        return 0
    table = _schema_version_table(MetaData())
    version = conn.execute(select(func.max(table.c.version))).scalar_one()
    return int(version) if version is not None else 0


def _write_version(conn: Connection, version: int) -> None:
    table = _schema_version_table(MetaData())
    conn.execute(delete(table))
    conn.execute(insert(table).values(version=version))


async def current_version(engine: AsyncEngine) -> int:
    """The schema version recorded in the database (0 for an empty database)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_read_version)


async def upgrade(engine: AsyncEngine, *, target: int | None = None) -> int:
    """Apply the missing migrations (up to ``target``) and return the version now.

    The version is read first without a write lock: a current schema, the usual case, is left
    alone, so opening the store (every CLI command) reads through a busy SQLite database and
    never waits on another writer. Only when a migration is due does a step take its lock
    (PostgreSQL advisory lock, SQLite write lock) and re-read the version under it, so it is
    safe to run from several processes at once.
    """
    target = len(MIGRATIONS) if target is None else target
    found = _checked(await current_version(engine))
    if found >= target:
        return found
    for number, migration in enumerate(MIGRATIONS[:target], start=1):
        if number <= found:
            continue
        async with engine.connect() as conn:
            await conn.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
            async with conn.begin():
                if conn.dialect.name == "postgresql":
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY}
                    )
                if _checked(await conn.run_sync(_read_version)) < number:
                    await conn.run_sync(migration)
                    await conn.run_sync(_write_version, number)
    return await current_version(engine)


def _checked(version: int) -> int:
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this program "
            f"knows ({len(MIGRATIONS)}); upgrade batch_poller"
        )
    return version

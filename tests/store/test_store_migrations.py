"""Schema migrations: fresh, from an older version, repeated, concurrent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import Connection, MetaData, Table, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine
from store_testlib import NOW, EngineFactory, arn

from batch_poller.domain import BedrockStatus, JobStatus
from batch_poller.store import JobStore, NewJob, current_version, upgrade
from batch_poller.store.migrations import MIGRATIONS
from batch_poller.store.tables import SCHEMA_VERSION, metadata, schema_version


def _snapshot(conn: Connection) -> dict[str, Any]:
    """Everything reflection says about our tables, in dialect terms, order-free."""
    insp = inspect(conn)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        columns = {
            c["name"]: (
                str(c["type"].compile(dialect=conn.dialect)),
                c["type"]._type_affinity,
                c["nullable"],
                c.get("default"),
            )
            for c in insp.get_columns(table)
        }
        out[table] = {
            "columns": columns,
            "pk": sorted(insp.get_pk_constraint(table)["constrained_columns"]),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            "fks": sorted(
                (
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                    (f.get("options") or {}).get("ondelete", "").upper(),
                )
                for f in insp.get_foreign_keys(table)
            ),
            "checks": sorted(c["name"] for c in insp.get_check_constraints(table)),
        }
    return out


async def snapshot(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await conn.run_sync(_snapshot)


async def test_fresh_upgrade_matches_the_declared_tables(engine: AsyncEngine) -> None:
    assert await current_version(engine) == 0
    assert await upgrade(engine) == SCHEMA_VERSION == len(MIGRATIONS)
    assert await current_version(engine) == SCHEMA_VERSION

    got = await snapshot(engine)
    assert set(got) == set(metadata.tables)
    for name, table in metadata.tables.items():
        reflected = got[name]
        assert set(reflected["columns"]) == {c.name for c in table.columns}, name
        for column in table.columns:
            _, affinity, nullable, _ = reflected["columns"][column.name]
            assert affinity is column.type._type_affinity, (name, column.name)
            assert nullable == column.nullable, (name, column.name)
        assert reflected["pk"] == sorted(c.name for c in table.primary_key.columns)
        assert reflected["indexes"] == sorted(
            (i.name, tuple(c.name for c in i.columns), i.unique) for i in table.indexes
        )
        assert len(reflected["fks"]) == len(table.foreign_keys)


async def test_fresh_upgrade_equals_create_all(engine_factory: EngineFactory) -> None:
    migrated = await engine_factory()
    await upgrade(migrated)
    declared = await engine_factory()
    async with declared.begin() as conn:
        await conn.run_sync(metadata.create_all)
    assert await snapshot(migrated) == await snapshot(declared)


async def test_upgrading_a_version_1_database_keeps_rows_and_ends_like_fresh(
    engine_factory: EngineFactory,
) -> None:
    old = await engine_factory()
    assert await upgrade(old, target=1) == 1
    v1 = await snapshot(old)
    assert "bytes_freed" not in v1["bedrock_batch_jobs"]["columns"]
    assert "cleanup_attempts" not in v1["bedrock_batch_jobs"]["columns"]
    assert await current_version(old) == 1

    # The first release wrote these; track_job only touches v1 columns, and the record is
    # written through the v1 table as the database itself describes it.
    writer = JobStore(old)
    await writer.track_job(
        NewJob(
            arn=arn(1),
            bedrock_status=BedrockStatus.COMPLETED,
            status=JobStatus.IN_PROGRESS,
            s3_folder="s3://in/folder/",
            submitted_at=NOW,
        ),
        NOW,
    )
    async with old.begin() as conn:
        v1_records = await conn.run_sync(
            lambda sync: Table("batch_records", MetaData(), autoload_with=sync)
        )
        await conn.execute(
            insert(v1_records).values(
                batch_job_arn=arn(1),
                record_id="r1",
                outcome="ok",
                model_output='{"a": 1}',
                stored_at=NOW,
            )
        )

    assert await upgrade(old) == SCHEMA_VERSION

    fresh = await engine_factory()
    await upgrade(fresh)
    assert v1 != await snapshot(fresh)  # so the comparison below has teeth
    assert await snapshot(old) == await snapshot(fresh)

    job = await writer.get_job(arn(1))
    assert job is not None
    assert job.s3_folder == "s3://in/folder/"
    assert job.submitted_at == NOW
    assert job.cleanup_attempts == 0  # the new NOT NULL column got its default
    assert job.bytes_freed is None
    assert await writer.record_ids(arn(1)) == {"r1"}


async def test_upgrade_is_idempotent(engine: AsyncEngine) -> None:
    assert await upgrade(engine) == SCHEMA_VERSION
    before = await snapshot(engine)
    assert await upgrade(engine) == SCHEMA_VERSION
    assert await upgrade(engine) == SCHEMA_VERSION
    assert await snapshot(engine) == before
    async with engine.connect() as conn:
        versions = (await conn.execute(select(schema_version.c.version))).scalars().all()
    assert versions == [SCHEMA_VERSION]


async def test_concurrent_upgrades_do_not_collide(engine_factory: EngineFactory) -> None:
    first = await engine_factory()
    second = await engine_factory(same_as=first)
    results = await asyncio.gather(upgrade(first), upgrade(second), upgrade(first))
    assert results == [SCHEMA_VERSION] * 3
    async with second.connect() as conn:
        versions = (await conn.execute(select(schema_version.c.version))).scalars().all()
    assert versions == [SCHEMA_VERSION]


async def test_a_newer_database_is_refused(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(schema_version.update().values(version=SCHEMA_VERSION + 1))
    with pytest.raises(RuntimeError, match="newer"):
        await upgrade(engine)

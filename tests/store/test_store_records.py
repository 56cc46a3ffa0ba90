"""Result records: idempotent batched upserts and their aggregates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, event, select
from store_testlib import NOW, arn

from batch_poller.domain import BedrockStatus, JobStatus
from batch_poller.store import (
    JobStore,
    NewJob,
    RecordRow,
    RecordScope,
    StoreError,
    UnknownJobError,
)
from batch_poller.store.tables import batch_records, bedrock_batch_jobs
from tests.helpers import leased


def to_fetch(job_arn: str) -> NewJob:
    """A job Bedrock finished with output: its records are stored while it is fetched."""
    return NewJob(arn=job_arn, bedrock_status=BedrockStatus.COMPLETED, status=JobStatus.IN_PROGRESS)


@pytest.fixture
async def job(store: JobStore) -> AsyncIterator[str]:
    """A job that needs its fetch, leased to the store's process for the whole test."""
    await store.track_job(to_fetch(arn(1)), NOW)
    async with leased(store, arn(1), NOW):
        yield arn(1)


def ok(n: int, **kw: Any) -> RecordRow:
    fields: dict[str, Any] = {
        "model_output": f'{{"n": {n}}}',
        "model_input": f'{{"prompt": "p{n}"}}',
        "source_file": "batch.jsonl.out",
        "line_number": n,
        "input_tokens": 10,
        "output_tokens": 5,
        "cost": Decimal("0.00012345"),
    }
    fields.update(kw)
    return RecordRow(record_id=f"r{n:06d}", outcome="ok", **fields)


def err(n: int, code: str) -> RecordRow:
    return RecordRow(record_id=f"e{n:06d}", outcome="error", error_code=code, error_message="boom")


async def stored(store: JobStore, job_arn: str) -> dict[str, Any]:
    async with store.engine.connect() as conn:
        result = await conn.execute(
            select(batch_records).where(batch_records.c.batch_job_arn == job_arn)
        )
        return {row.record_id: row._asdict() for row in result}


async def test_writing_the_same_records_again_replaces_them(store: JobStore, job: str) -> None:
    first = [ok(1), ok(2), ok(3)]
    assert (await store.write_records(job, first, NOW)).written == 3
    changed = ok(3, model_output='{"n": "changed"}', output_tokens=99, cost=Decimal("0.5"))
    later = NOW + timedelta(minutes=1)  # within the lease, which the first write extended
    assert (await store.write_records(job, [ok(1), ok(2), changed], later)).written == 3

    rows = await stored(store, job)
    assert sorted(rows) == ["r000001", "r000002", "r000003"]
    assert rows["r000003"]["model_output"] == '{"n": "changed"}'
    assert rows["r000003"]["output_tokens"] == 99
    assert rows["r000003"]["cost"] == Decimal("0.5")
    assert rows["r000003"]["stored_at"] == later
    assert rows["r000001"]["model_output"] == '{"n": 1}'
    assert rows["r000001"]["line_number"] == 1
    assert await store.record_ids(job) == {"r000001", "r000002", "r000003"}


async def test_model_output_text_is_stored_as_given(store: JobStore, job: str) -> None:
    raw = '{ "content": [ {"text": "héllo \\u00e9 \\n"} ],  "stop_reason": "end_turn" }'
    await store.write_records(job, [ok(1, model_output=raw)], NOW)
    assert (await stored(store, job))["r000001"]["model_output"] == raw


async def test_duplicates_within_one_batch_keep_the_last(store: JobStore, job: str) -> None:
    report = await store.write_records(job, [ok(1), ok(1, model_output='"second"')], NOW)
    assert report.written == 1 and report.conflicts == []
    assert (await stored(store, job))["r000001"]["model_output"] == '"second"'


async def test_empty_batch_writes_nothing(store: JobStore, job: str) -> None:
    assert (await store.write_records(job, [], NOW)).written == 0
    assert await store.record_ids(job) == set()


async def test_ten_thousand_rows_through_the_driver_s_bulk_path(store: JobStore, job: str) -> None:
    rows = [ok(n) for n in range(10_000)]
    inserts: list[bool] = []

    def spy(_conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            inserts.append(many)

    sync_engine = store.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", spy)
    try:
        assert (await store.write_records(job, rows, NOW)).written == 10_000
    finally:
        event.remove(sync_engine, "before_cursor_execute", spy)

    # Through the driver itself (an executemany on SQLite, COPY and one upsert on PostgreSQL),
    # beside SQLAlchemy: it sees no INSERT of its own.
    assert inserts == []
    assert len(await store.record_ids(job)) == 10_000
    # Writing the same batch again stays at 10,000.
    await store.write_records(job, rows, NOW)
    assert (await store.record_counts(job)).total == 10_000


async def test_a_bad_row_rolls_the_whole_batch_back(store: JobStore, job: str) -> None:
    rows = [ok(1), ok(2), RecordRow(record_id="bad", outcome="maybe")]
    refused = r"^store records: (IntegrityError|CheckViolationError): "
    with pytest.raises(StoreError, match=refused) as failed:
        await store.write_records(job, rows, NOW)
    assert await store.record_ids(job) == set()
    # Neither the statement nor its parameters (record contents) are in the message.
    assert "INSERT" not in str(failed.value) and "prompt" not in str(failed.value)
    assert len(str(failed.value)) < 400


async def test_records_need_a_tracked_job_and_go_with_it(store: JobStore, job: str) -> None:
    # The fence finds no such job before anything is inserted.
    with pytest.raises(UnknownJobError):
        await store.write_records(arn(2), [ok(1)], NOW)
    async with store.engine.connect() as conn:
        assert (await conn.execute(select(batch_records.c.record_id))).all() == []
    await store.write_records(job, [ok(1), err(2, "ValidationException")], NOW)
    async with store.engine.begin() as conn:
        await conn.execute(
            delete(bedrock_batch_jobs).where(bedrock_batch_jobs.c.batch_job_arn == job)
        )
    async with store.engine.connect() as conn:
        left = (await conn.execute(select(batch_records.c.record_id))).all()
    assert left == []  # ON DELETE CASCADE (and, on SQLite, foreign_keys=ON)


async def test_record_counts_sum_everything(store: JobStore, job: str) -> None:
    await store.track_job(to_fetch(arn(2)), NOW)
    async with leased(store, arn(2), NOW):
        await store.write_records(arn(2), [ok(99, input_tokens=1_000_000)], NOW)  # other job

    rows = [
        ok(1, input_tokens=100, output_tokens=50, cost=Decimal("0.00100000")),
        ok(2, input_tokens=200, output_tokens=70, cost=Decimal("0.00200001")),
        ok(3, input_tokens=None, output_tokens=None, cost=None),
        err(4, "ValidationException"),
        err(5, "ValidationException"),
        err(6, "ThrottlingException"),
        RecordRow(record_id="e7", outcome="error", error_message="no code"),
    ]
    await store.write_records(job, rows, NOW)
    totals = await store.record_counts(job)
    assert (totals.total, totals.ok, totals.error) == (7, 3, 4)
    assert (totals.input_tokens, totals.output_tokens) == (300, 120)
    assert isinstance(totals.cost, Decimal)
    assert totals.cost == Decimal("0.00300001")
    assert totals.by_error_code == {"ValidationException": 2, "ThrottlingException": 1}


async def test_record_counts_of_an_empty_job_are_zero(store: JobStore, job: str) -> None:
    totals = await store.record_counts(job)
    assert (totals.total, totals.ok, totals.error, totals.input_tokens) == (0, 0, 0, 0)
    assert totals.cost is None  # nothing priced is not a cost of zero
    assert totals.by_error_code == {}


async def test_an_id_taken_by_another_line_comes_back_as_a_conflict(
    store: JobStore, job: str
) -> None:
    first = RecordRow("dup", "ok", model_output="1", source_file="a.jsonl.out", line_number=1)
    same = RecordRow("dup", "ok", model_output="2", source_file="a.jsonl.out", line_number=1)
    other = RecordRow("dup", "ok", model_output="3", source_file="b.jsonl.out", line_number=1)
    await store.write_records(job, [first], NOW)

    again = await store.write_records(job, [same], NOW)
    clash = await store.write_records(job, [other], NOW)
    within = await store.write_records(job, [ok(7), other], NOW)

    assert (again.written, again.conflicts) == (1, [])
    assert (clash.written, clash.conflicts) == (0, [other])
    assert within.written == 1 and within.conflicts == [other]
    assert (await stored(store, job))["dup"]["model_output"] == "2"


async def test_nul_characters_are_stored_on_both_databases(store: JobStore, job: str) -> None:
    row = RecordRow("nul\x00id", "error", error_message="bad\x00byte", raw_text="\x00raw")

    report = await store.write_records(job, [row], NOW)
    again = await store.write_records(job, [row], NOW)

    stored_rows = await stored(store, job)
    # What was written is compared with what was written: the id is no conflict with itself.
    assert (report.written, report.conflicts) == (1, [])
    assert (again.written, again.conflicts) == (1, [])
    assert list(stored_rows) == ["nul\ufffdid"]
    assert stored_rows["nul\ufffdid"]["error_message"] == "bad\ufffdbyte"
    assert stored_rows["nul\ufffdid"]["raw_text"] == "\ufffdraw"


async def test_keep_input_of_line_fills_the_stored_line(store: JobStore, job: str) -> None:
    cut = RecordRow("r1", "error", error_code="PARSE_ERROR", source_file="a.jsonl.out")
    await store.write_records(job, [cut], NOW)
    later = NOW + timedelta(minutes=1)
    await store.keep_input_of_line(job, "r1", '{"prompt": "p"}', "cut\x00short", later)
    row = (await stored(store, job))["r1"]
    assert (row["model_input"], row["error_message"]) == ('{"prompt": "p"}', "cut\ufffdshort")
    lease = await store.get_job(job)
    assert lease is not None and lease.claimed_until == later + timedelta(minutes=5)


async def test_records_stream_in_id_order_a_chunk_at_a_time(store: JobStore, job: str) -> None:
    await store.track_job(to_fetch(arn(2)), NOW)
    async with leased(store, arn(2), NOW):
        await store.write_records(arn(2), [ok(99)], NOW)  # another job's: never streamed
    rows = [ok(n) for n in range(1, 12)] + [err(n, "ValidationException") for n in (12, 13)]
    await store.write_records(job, rows[::-1], NOW)

    scope = RecordScope(job=job)
    streamed = [row async for arn, row in store.stream_records(scope, chunk=4) if arn == job]
    errors = [row async for _, row in store.stream_records(scope, errors_only=True, chunk=1)]

    assert [row.record_id for row in streamed] == sorted(row.record_id for row in rows)
    assert {row.record_id: row for row in streamed} == {row.record_id: row for row in rows}
    assert [(row.record_id, row.error_code) for row in errors] == [
        (row.record_id, "ValidationException") for row in rows[-2:]
    ]


async def test_a_trigger_on_the_table_cannot_pass_a_refused_row_off_as_written(
    store: JobStore, job: str
) -> None:
    """An application sharing the database may queue work with a trigger; its changes must not
    make a refused row look written (on SQLite the writer counts changes)."""
    async with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            await conn.exec_driver_sql("CREATE TABLE app_new_items (record_id TEXT)")
            await conn.exec_driver_sql(
                "CREATE TRIGGER queue_new AFTER INSERT ON batch_records"
                " BEGIN INSERT INTO app_new_items VALUES (new.record_id); END"
            )
    await store.write_records(job, [ok(1, source_file="a", line_number=1)], NOW)

    report = await store.write_records(
        job, [ok(2, source_file="b", line_number=6), ok(1, source_file="b", line_number=7)], NOW
    )

    assert report.written == 1
    assert [(r.record_id, r.source_file, r.line_number) for r in report.conflicts] == [
        ("r000001", "b", 7)
    ]


async def test_the_time_a_record_was_stored_reads_as_every_other_time(
    store: JobStore, job: str
) -> None:
    """Written by the driver, stored_at is what SQLAlchemy's own type writes: on SQLite its
    DATETIME text with microseconds, so the times compare and sort as text too."""
    exact = NOW.replace(microsecond=0)
    await store.write_records(job, [ok(1)], exact)
    async with store.engine.connect() as conn:
        stamp = (await conn.exec_driver_sql("SELECT stored_at FROM batch_records")).scalar_one()
        same = await conn.execute(
            select(batch_records.c.record_id).where(batch_records.c.stored_at == exact)
        )
        assert same.scalars().all() == ["r000001"]
    if store.engine.dialect.name == "sqlite":
        assert stamp == exact.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


async def test_the_line_holding_an_id_keeps_it_wherever_it_comes_in_the_batch(
    store: JobStore, job: str
) -> None:
    """A resumed batch may read another line naming the same id first: the line that holds it
    keeps it (written again in place), and only the other one is refused, to be renamed."""
    await store.write_records(job, [ok(1, source_file="b", line_number=1)], NOW)

    report = await store.write_records(
        job,
        [ok(1, source_file="a", line_number=1), ok(1, source_file="b", line_number=1)],
        NOW,
    )

    assert report.written == 1
    assert [(r.source_file, r.line_number) for r in report.conflicts] == [("a", 1)]
    assert await store.record_ids(job) == {"r000001"}

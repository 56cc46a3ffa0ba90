"""Hostile data and database errors: odd bytes in record ids and lines, nested files, cut lines
of a partial job, and database errors whose text must never carry record contents."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from batch_poller.domain import JobStatus, job_id_from_arn
from batch_poller.runtime import Runtime
from batch_poller.store import StoreError, stored_record_id
from batch_poller.supervisor import Supervisor
from batch_poller.tracking import track_jobs
from tests.daemon.test_lifecycle import stored_records
from tests.daemon_fixtures import BACKENDS, JobFactory
from tests.helpers import BUCKET, create_job, list_keys, make_records, put_input, read_object


def _folder(arn: str) -> str:
    return f"out/{job_id_from_arn(arn)}/"


async def _output_lines(s3: Any, arn: str) -> list[bytes]:
    return (await read_object(s3, _folder(arn) + "input.jsonl.out")).splitlines()


async def _put_output_lines(s3: Any, arn: str, lines: list[bytes]) -> None:
    body = b"\n".join(lines) + b"\n"
    await s3.put_object(Bucket=BUCKET, Key=_folder(arn) + "input.jsonl.out", Body=body)


async def test_a_database_error_names_the_operation_and_never_the_records(
    supervisor: Supervisor,
    runtime: Runtime,
    control: Any,
    s3: Any,
    submit: JobFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arn = await submit(5)
    await control.finish(arn, "Completed")
    outputs = [json.loads(line)["modelOutput"] for line in await _output_lines(s3, arn)]
    async with runtime.store.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON batch_records "
                "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
            )
        )

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    logged = capsys.readouterr()
    assert job is not None and job.status is JobStatus.RESULT_FETCH_FAILED
    assert job.last_error == (
        "store records: IntegrityError: refused by a trigger (writing input.jsonl.out lines 1-5)"
    )
    for shown in (job.last_error, logged.out + logged.err):
        assert "INSERT" not in shown and "j1-0000" not in shown
        assert all(json.dumps(output)[:40] not in shown for output in outputs)
    assert "store records: IntegrityError: refused by a trigger" in logged.out + logged.err


@BACKENDS
@pytest.mark.parametrize("finish", ["Completed", "PartiallyCompleted"])
async def test_a_record_id_with_a_nul_character_is_stored_once_and_the_job_completes(
    supervisor: Supervisor, runtime: Runtime, control: Any, bedrock: Any, s3: Any, finish: str
) -> None:
    records = make_records(4)
    records[1]["recordId"] = "nul\x00id"
    uri = await put_input(s3, "nul/input.jsonl", records)
    arn = await create_job(bedrock, uri)
    await track_jobs(runtime, [arn], f"s3://{BUCKET}/nul/")
    await control.finish(arn, finish)

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    stored = await stored_records(runtime, arn)
    assert job is not None and job.last_error is None
    assert job.status.value == finish.replace("PartiallyCompleted", "PARTIALLY_COMPLETED").upper()
    assert len(stored) == 4 and "nul\ufffdid" in stored
    assert job.cleanup_completed_at is not None


async def test_result_files_below_the_jobs_folder_are_not_read_nor_deleted_unforced(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    """Bedrock writes its .out files at the top of the job's folder only: one below is not
    the job's, was never read, and is not deleted without `--force`."""
    arn = await submit(3)
    await control.finish(arn, "Completed")
    stray = b'{"recordId":"ghost","modelInput":{},"modelOutput":{}}\n'
    await s3.put_object(Bucket=BUCKET, Key=_folder(arn) + "sub/x.jsonl.out", Body=stray)

    await supervisor.run_pass()
    kept = await runtime.store.get_job(arn)
    assert kept is not None
    await supervisor.clean_now(kept, force=True)

    job = await runtime.store.get_job(arn)
    assert kept.status is JobStatus.COMPLETED and kept.total_records == 3
    assert "ghost" not in await stored_records(runtime, arn)
    assert kept.cleanup_completed_at is None
    assert kept.last_error is not None and "sub/x.jsonl.out" in kept.last_error
    assert job is not None and job.cleanup_completed_at is not None
    assert await list_keys(s3, _folder(arn)) == []


async def test_an_input_folder_holding_other_input_files_is_kept_unforced(
    supervisor: Supervisor, runtime: Runtime, control: Any, bedrock: Any, s3: Any
) -> None:
    """The folder of a one-file input may also hold other jobs' inputs, tracked or not."""
    uri = await put_input(s3, "batches/a.jsonl", make_records(2, prefix="a"))
    await put_input(s3, "batches/b.jsonl", make_records(2, prefix="b"))  # nobody tracks it
    arn = await create_job(bedrock, uri, output_uri=f"s3://{BUCKET}/out/")
    await track_jobs(runtime, [arn], f"s3://{BUCKET}/batches/")
    await control.finish(arn, "Completed")

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.cleanup_completed_at is None
    assert job.last_error is not None and "batches/b.jsonl" in job.last_error
    assert await list_keys(s3, "batches/") == ["batches/a.jsonl", "batches/b.jsonl"]
    assert await list_keys(s3, _folder(arn)) == []  # its own output went


@pytest.mark.parametrize(
    ("kept_of_id", "not_processed"),
    [
        pytest.param(8, 2, id="the whole id, not its closing quote"),
        pytest.param(5, 3, id="a part that several records share"),
        pytest.param(0, 3, id="nothing of the id"),
    ],
)
async def test_a_partial_jobs_line_cut_inside_its_record_id_settles_the_job(
    supervisor: Supervisor,
    runtime: Runtime,
    control: Any,
    s3: Any,
    submit: JobFactory,
    kept_of_id: int,
    not_processed: int,
) -> None:
    arn = await submit(8)
    await control.finish(arn, "PartiallyCompleted")  # 2 of the 8 records left out
    lines = await _output_lines(s3, arn)
    cut = json.loads(lines[0])
    start = lines[0].index(b'"recordId":"') + len(b'"recordId":"')
    lines[0] = lines[0][: start + kept_of_id]
    await _put_output_lines(s3, arn, lines)

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    records = await stored_records(runtime, arn)
    codes = [r.error_code for r in records.values()]
    assert job is not None and job.status is JobStatus.PARTIALLY_COMPLETED, job and job.last_error
    assert codes.count("PARSE_ERROR") == 1
    # When the cut left nothing to tell the record by, its input is kept as not processed too.
    assert codes.count("NOT_PROCESSED") == not_processed
    assert job.cleanup_completed_at is not None
    # Either way the cut record's input is stored: with its line, or as not processed.
    inputs = {r.record_id: r.model_input for r in records.values() if r.model_input}
    assert json.dumps(cut["modelInput"], separators=(",", ":")) in inputs.values()


@BACKENDS
async def test_a_line_of_invalid_utf8_or_nul_is_kept_byte_for_byte(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    arn = await submit(4)
    await control.finish(arn, "Completed")
    lines = await _output_lines(s3, arn)
    lines[1] = b'\xff\xfe{"recordId":"' + lines[1][14:40] + b"\xc3("
    lines[2] = b"\x00 not json \x00"
    await _put_output_lines(s3, arn, lines)

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    kept = {r.line_number: r for r in (await stored_records(runtime, arn)).values() if r.raw_text}
    assert job is not None and job.status is JobStatus.COMPLETED
    assert kept[2].raw_bytes == lines[1] and kept[3].raw_bytes == lines[2]
    assert kept[2].raw_text == lines[1].decode("utf-8", errors="replace")


async def test_a_job_step_failing_in_the_database_is_one_line_not_a_traceback(
    supervisor: Supervisor,
    runtime: Runtime,
    submit: JobFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arn = await submit(2)
    async with runtime.store.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE UPDATE OF bedrock_status ON bedrock_batch_jobs "
                "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
            )
        )
    capsys.readouterr()

    report = await supervisor.run_pass()

    logged = capsys.readouterr()
    lines = [line for line in (logged.out + logged.err).splitlines() if "job_step" in line]
    assert report.crashed == 1
    assert len(lines) == 1 and "job_step_failed" in lines[0] and arn in lines[0]
    assert "record checks: IntegrityError: refused by a trigger" in lines[0]
    assert "Traceback" not in logged.out + logged.err


async def test_a_database_file_deleted_under_the_daemon_fails_passes_and_deletes_nothing(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    arn = await submit(5)
    await control.finish(arn, "Completed")
    database = Path(str(runtime.store.engine.url.database))
    before = await list_keys(s3, "")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{database}{suffix}")

    with pytest.raises(StoreError, match="was deleted while the daemon had it open"):
        await supervisor.run_pass()
    job = await runtime.store.get_job(arn)  # still readable through the open handle
    assert job is not None
    with pytest.raises(StoreError, match="was deleted"):
        await supervisor.tracker.clean(job, force=True)

    assert await list_keys(s3, "") == before


async def test_a_database_file_replaced_under_the_daemon_is_refused_too(
    supervisor: Supervisor, runtime: Runtime, submit: JobFactory
) -> None:
    await submit(1)
    database = Path(str(runtime.store.engine.url.database))
    replacement = database.with_name("other.db")
    shutil.copyfile(database, replacement)
    os.replace(replacement, database)

    with pytest.raises(StoreError, match="was replaced while the daemon had it open"):
        await supervisor.run_pass()


@BACKENDS
async def test_huge_ids_and_token_counts_out_of_range_are_stored_not_refused(
    supervisor: Supervisor, runtime: Runtime, control: Any, bedrock: Any, s3: Any
) -> None:
    records = make_records(4)
    long_id = "L" * 300_000
    records[0]["recordId"] = long_id
    uri = await put_input(s3, "odd/input.jsonl", records)
    arn = await create_job(bedrock, uri, output_uri=f"s3://{BUCKET}/out/")
    await track_jobs(runtime, [arn], f"s3://{BUCKET}/odd/")
    await control.finish(arn, "PartiallyCompleted")
    lines = [json.loads(line) for line in await _output_lines(s3, arn)]
    for line, tokens in zip(lines, (3_000_000_000, 2**63, -5), strict=False):
        if "modelOutput" in line:
            line["modelOutput"]["usage"]["inputTokens"] = tokens
    await _put_output_lines(s3, arn, [json.dumps(line).encode() for line in lines])

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    stored = await stored_records(runtime, arn)
    assert job is not None and job.status is JobStatus.PARTIALLY_COMPLETED, job and job.last_error
    assert len(stored) == 4
    (kept_long,) = [rid for rid in stored if rid.startswith("L" * 200)]
    assert kept_long == stored_record_id(long_id) and len(kept_long) < 300
    assert all(r.input_tokens is None or 0 <= r.input_tokens < 2**31 for r in stored.values())


async def test_a_literal_id_that_is_the_name_of_a_duplicate_still_leaves_both_records(
    supervisor: Supervisor, runtime: Runtime, control: Any, bedrock: Any, s3: Any
) -> None:
    records = make_records(3, prefix="r")
    records[1]["recordId"] = records[0]["recordId"]  # a duplicate, renamed r00000@input.jsonl.out:2
    records[2]["recordId"] = "r00000@input.jsonl.out:2"  # ... a name a line already has
    uri = await put_input(s3, "dup/input.jsonl", records)
    arn = await create_job(bedrock, uri, output_uri=f"s3://{BUCKET}/out/")
    await track_jobs(runtime, [arn], f"s3://{BUCKET}/dup/")
    await control.finish(arn, "Completed")
    lines = await _output_lines(s3, arn)
    ordered = sorted(
        lines, key=lambda line: json.loads(line)["modelInput"]["messages"][0]["content"][0]["text"]
    )
    await _put_output_lines(s3, arn, ordered)

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    stored = await stored_records(runtime, arn)
    assert job is not None and job.status is JobStatus.COMPLETED, job and job.last_error
    assert len(stored) == 3 and "r00000" in stored and "r00000@input.jsonl.out:2" in stored

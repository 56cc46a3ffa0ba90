"""Each Bedrock status, end to end: emulator -> tracker -> store -> S3 cleanup."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from batch_poller.domain import BedrockStatus, JobStatus, job_id_from_arn
from batch_poller.runtime import Runtime
from batch_poller.store.tables import batch_records
from batch_poller.supervisor import Supervisor
from tests.daemon_fixtures import BACKENDS, JobFactory
from tests.helpers import list_keys, read_object


async def stored_records(rt: Runtime, arn: str) -> dict[str, Any]:
    async with rt.store.engine.connect() as conn:
        rows = await conn.execute(select(batch_records).where(batch_records.c.batch_job_arn == arn))
        return {row.record_id: row for row in rows}


async def output_lines(s3: Any, arn: str) -> list[dict[str, Any]]:
    folder = f"out/{job_id_from_arn(arn)}/"
    lines = []
    for key in await list_keys(s3, folder):
        if key.endswith(".jsonl.out"):
            lines += [json.loads(line) for line in (await read_object(s3, key)).splitlines()]
    return lines


@pytest.mark.parametrize("status", ["Submitted", "Validating", "Scheduled", "InProgress"])
async def test_a_running_job_stays_in_progress_and_is_checked_every_pass(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: JobFactory, status: str
) -> None:
    arn = await submit()
    while (await control.job(arn))["status"] != status:
        await control.advance(arn)

    report = await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None
    assert job.status is JobStatus.IN_PROGRESS
    assert job.bedrock_status is BedrockStatus(status)
    assert job.last_checked_at == runtime.clock.now()
    assert report.as_dict()["checked"] == 1
    assert job.results_fetched_at is None


async def test_stopping_is_still_in_progress(
    supervisor: Supervisor, runtime: Runtime, bedrock: Any, submit: JobFactory
) -> None:
    arn = await submit()
    await bedrock.stop_model_invocation_job(jobIdentifier=arn)

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.IN_PROGRESS
    assert job.bedrock_status is BedrockStatus.STOPPING


@BACKENDS
async def test_a_completed_job_is_stored_checked_and_cleaned(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    arn = await submit(40, tags={"emulator:error-rate": "0.25"})
    await control.finish(arn, "Completed")
    written = await output_lines(s3, arn)
    manifest = json.loads(await read_object(s3, f"out/{job_id_from_arn(arn)}/manifest.json.out"))

    report = await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert (job.total_records, job.success_records, job.error_records) == (40, 30, 10)
    assert (job.input_tokens, job.output_tokens) == (
        manifest["inputTokenCount"],
        manifest["outputTokenCount"],
    )
    assert (
        job.cost
        == (
            Decimal("0.03") * manifest["inputTokenCount"]
            + Decimal("0.12") * manifest["outputTokenCount"]
        )
        / 1000
    )
    records = await stored_records(runtime, arn)
    assert set(records) == {line["recordId"] for line in written}
    for line in written:
        row = records[line["recordId"]]
        if "modelOutput" in line:
            assert row.outcome == "ok"
            assert orjson.loads(row.model_output) == line["modelOutput"]
            assert row.input_tokens == line["modelOutput"]["usage"]["inputTokens"]
            assert row.model_input is None  # not stored unless asked for
        else:
            assert row.outcome == "error"
            assert row.error_code == "400"
            # Kept: what a resubmission runs again.
            assert row.model_input is not None
            assert orjson.loads(row.model_input) == line["modelInput"]
    assert report.as_dict()["fetched"] == 1 and report.as_dict()["cleaned"] == 1
    assert job.cleanup_completed_at is not None
    assert job.bytes_freed and job.bytes_freed > 0
    assert await list_keys(s3, f"out/{job_id_from_arn(arn)}/") == []
    assert await list_keys(s3, "jobs/job-1/") == []


async def test_a_second_pass_changes_nothing(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: JobFactory
) -> None:
    arn = await submit(5)
    await control.finish(arn, "Completed")
    await supervisor.run_pass()
    before = await runtime.store.get_job(arn)

    report = await supervisor.run_pass()

    assert report.jobs == 0
    assert await runtime.store.get_job(arn) == before


@BACKENDS
@pytest.mark.parametrize(
    ("final", "message"),
    [
        ("Failed", "out of capacity"),
        ("Stopped", None),
        ("Expired", None),
    ],
)
async def test_failed_stopped_and_expired_jobs_are_failed_and_keep_their_files(
    supervisor: Supervisor,
    runtime: Runtime,
    control: Any,
    s3: Any,
    submit: JobFactory,
    final: str,
    message: str | None,
) -> None:
    arn = await submit(3)
    await control.finish(arn, final, message)

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None
    assert job.status is JobStatus.FAILED
    assert job.bedrock_status is BedrockStatus(final)
    if message:
        assert job.message == message
    assert job.completed_at is not None
    assert job.results_fetched_at is None and job.cleanup_completed_at is None
    assert await list_keys(s3, "jobs/job-1/") == ["jobs/job-1/input.jsonl"]


@BACKENDS
async def test_a_partial_job_keeps_its_unprocessed_records_before_the_input_goes(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    arn = await submit(20, tags={"emulator:unprocessed-rate": "0.25"})
    await control.finish(arn, "PartiallyCompleted")
    processed = {line["recordId"] for line in await output_lines(s3, arn)}
    inputs = {
        item["recordId"]: item["modelInput"]
        for item in map(json.loads, (await read_object(s3, "jobs/job-1/input.jsonl")).splitlines())
    }

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None
    assert job.status is JobStatus.PARTIALLY_COMPLETED
    records = await stored_records(runtime, arn)
    assert set(records) == set(inputs)
    missing = set(inputs) - processed
    assert len(missing) == 5
    for record_id in missing:
        assert records[record_id].error_code == "NOT_PROCESSED"
        assert orjson.loads(records[record_id].model_input) == inputs[record_id]
    assert job.total_records == 20 and job.error_records == 5
    assert job.cleanup_completed_at is not None
    assert await list_keys(s3, "jobs/job-1/") == []


async def test_a_completed_job_with_no_successes_is_stored_as_it_is(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: JobFactory
) -> None:
    arn = await submit(4, tags={"emulator:error-rate": "1"})
    await control.finish(arn, "Completed")

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert (job.success_records, job.error_records) == (0, 4)


async def test_store_model_input_keeps_the_echoed_input(
    make_settings: Any, clock: Any, control: Any, bedrock: Any, s3: Any
) -> None:
    from batch_poller.app import build_supervisor, open_runtime
    from batch_poller.tracking import track_jobs
    from tests.helpers import create_job, make_records, put_input

    await control.freeze_clock()
    settings = make_settings(results={"store_model_input": True})
    async with open_runtime(settings, clock=clock) as rt:
        uri = await put_input(s3, "in/a.jsonl", make_records(3))
        arn = await create_job(bedrock, uri)
        await track_jobs(rt, [arn])
        await control.finish(arn, "Completed")

        await build_supervisor(rt).run_pass()

        records = await stored_records(rt, arn)
    assert all(orjson.loads(r.model_input)["messages"] for r in records.values())


async def test_only_the_registered_input_folder_is_deleted(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    arn = await submit(3, own_input=False)
    await control.finish(arn, "Completed")

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.cleanup_completed_at is not None
    assert await list_keys(s3, "jobs/job-1/") == ["jobs/job-1/input.jsonl"]
    assert await list_keys(s3, "out/") == []

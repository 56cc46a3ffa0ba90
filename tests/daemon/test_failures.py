"""Throttling, fetch failures, malformed output and manifest mismatches: nothing stored is lost,
nothing is deleted before its results are safe."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from batch_poller.app import build_supervisor, open_runtime
from batch_poller.domain import JobStatus, auto_retry_delay, job_id_from_arn
from batch_poller.runtime import Runtime
from batch_poller.supervisor import Supervisor
from batch_poller.tracking import track_jobs
from tests.daemon.test_lifecycle import stored_records
from tests.daemon_fixtures import FakeClock, JobFactory
from tests.helpers import (
    BUCKET,
    create_job,
    leased,
    list_keys,
    make_records,
    put_input,
    read_object,
)


def _folder(arn: str) -> str:
    return f"out/{job_id_from_arn(arn)}/"


async def _take_manifest_away(s3: Any, arn: str) -> tuple[str, bytes]:
    """Deletes the job's manifest, so its fetch fails; returns its key and content."""
    key = _folder(arn) + "manifest.json.out"
    manifest = await read_object(s3, key)
    await s3.delete_object(Bucket=BUCKET, Key=key)
    return key, manifest


async def test_a_throttling_storm_still_ends_with_every_job_done(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: JobFactory
) -> None:
    arns = [await submit(5) for _ in range(6)]
    for arn in arns:
        await control.finish(arn, "Completed")
    await control.configure(faults={"throttle_rate": 0.7}, seed=11)

    passes = 0
    while passes < 30:
        passes += 1
        await supervisor.run_pass()
        jobs = [await runtime.store.get_job(arn) for arn in arns]
        if all(j is not None and j.cleanup_completed_at is not None for j in jobs):
            break

    assert all(j is not None and j.status is JobStatus.COMPLETED for j in jobs)
    assert all(j is not None and j.total_records == 5 for j in jobs)
    throttled = (await control.calls())["GetModelInvocationJob:ThrottlingException"]
    assert throttled > len(arns)  # the storm was real


async def test_a_fetch_that_fails_three_times_is_retried_by_process_completed(
    supervisor: Supervisor,
    runtime: Runtime,
    control: Any,
    s3: Any,
    clock: FakeClock,
    submit: JobFactory,
) -> None:
    arn = await submit(6)
    await control.finish(arn, "Completed")
    manifest_key, manifest = await _take_manifest_away(s3, arn)

    first = await supervisor.run_pass()
    failed = await runtime.store.get_job(arn)

    assert first.as_dict()["fetch_failed"] == 1
    assert failed is not None
    assert failed.status is JobStatus.RESULT_FETCH_FAILED
    assert failed.results_fetch_attempts == 3
    assert failed.last_error is not None and "no manifest" in failed.last_error
    assert clock.sleeps[-2:] == [2.0, 4.0]
    assert len(await list_keys(s3, _folder(arn))) == 1  # nothing deleted

    untouched = await supervisor.run_pass()
    assert untouched.jobs == 0  # a normal pass leaves RESULT_FETCH_FAILED alone

    await s3.put_object(Bucket=BUCKET, Key=manifest_key, Body=manifest)
    retried = await supervisor.run_pass(retry_failed=True)

    job = await runtime.store.get_job(arn)
    assert retried.as_dict()["fetched"] == 1
    assert job is not None and job.status is JobStatus.COMPLETED
    assert job.total_records == 6 and job.last_error is None
    assert job.cleanup_completed_at is not None


async def test_a_failed_fetch_is_retried_by_itself_after_a_growing_wait(
    supervisor: Supervisor,
    runtime: Runtime,
    control: Any,
    s3: Any,
    clock: FakeClock,
    submit: JobFactory,
) -> None:
    arn = await submit(4)
    await control.finish(arn, "Completed")
    manifest_key, manifest = await _take_manifest_away(s3, arn)

    await supervisor.run_pass()
    first = await runtime.store.get_job(arn)
    assert first is not None and first.status is JobStatus.RESULT_FETCH_FAILED
    assert first.fetch_retry_at == clock.now() + timedelta(seconds=600)

    clock.current = first.fetch_retry_at - timedelta(seconds=1)
    early = await supervisor.run_pass()
    clock.current = first.fetch_retry_at
    await supervisor.run_pass()
    second = await runtime.store.get_job(arn)

    assert early.jobs == 0
    assert second is not None and second.status is JobStatus.RESULT_FETCH_FAILED
    assert second.fetch_failures == 2 and second.results_fetch_attempts == 6
    # Doubled after the second failure.
    assert second.fetch_retry_at == clock.now() + timedelta(seconds=1200)

    await s3.put_object(Bucket=BUCKET, Key=manifest_key, Body=manifest)
    clock.current = second.fetch_retry_at
    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.COMPLETED and job.total_records == 4
    assert job.fetch_retry_at is None and job.cleanup_completed_at is not None


async def test_automatic_fetch_retries_wait_no_longer_than_the_cap_and_can_be_off(
    make_settings: Any, clock: FakeClock, control: Any, s3: Any, bedrock: Any
) -> None:
    await control.freeze_clock()
    settings = make_settings(results={"auto_retry_after_seconds": 0})
    async with open_runtime(settings, clock=clock) as rt:
        uri = await put_input(s3, "off/input.jsonl", make_records(2))
        arn = await create_job(bedrock, uri, output_uri=f"s3://{BUCKET}/out/")
        await track_jobs(rt, [arn], f"s3://{BUCKET}/off/")
        await control.finish(arn, "Completed")
        await s3.delete_object(Bucket=BUCKET, Key=_folder(arn) + "manifest.json.out")
        await build_supervisor(rt).run_pass()
        job = await rt.store.get_job(arn)

    assert job is not None and job.status is JobStatus.RESULT_FETCH_FAILED
    assert job.fetch_retry_at is None  # left to process-completed
    assert [auto_retry_delay(n, 600, 3000) for n in (1, 2, 3, 4, 9)] == [
        600,
        1200,
        2400,
        3000,
        3000,
    ]


async def test_a_completed_job_without_output_fails_its_fetch_not_the_loop(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    broken = await submit(3)
    healthy = await submit(3)
    for arn in (broken, healthy):
        await control.finish(arn, "Completed")
    for key in await list_keys(s3, _folder(broken)):
        await s3.delete_object(Bucket=BUCKET, Key=key)

    await supervisor.run_pass()

    broken_job = await runtime.store.get_job(broken)
    healthy_job = await runtime.store.get_job(healthy)
    assert broken_job is not None and broken_job.status is JobStatus.RESULT_FETCH_FAILED
    assert broken_job.last_error is not None
    assert "no .jsonl.out file and no manifest" in broken_job.last_error
    assert healthy_job is not None and healthy_job.status is JobStatus.COMPLETED


async def test_malformed_lines_are_kept_as_parse_errors_and_do_not_block_cleanup(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    arn = await submit(8)
    await control.finish(arn, "Completed")
    key = _folder(arn) + "input.jsonl.out"
    lines = (await read_object(s3, key)).splitlines()
    truncated_id = json.loads(lines[2])["recordId"]
    lines[2] = lines[2][: len(lines[2]) // 2]  # cut mid-record, its id still readable
    lines[5] = b"\x00garbage that is not json"
    await s3.put_object(Bucket=BUCKET, Key=key, Body=b"\n".join(lines) + b"\n\n")

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    records = await stored_records(runtime, arn)
    assert job is not None and job.status is JobStatus.COMPLETED
    assert len(records) == 8
    truncated = records[truncated_id]
    assert truncated.error_code == "PARSE_ERROR"
    assert truncated.line_number == 3
    assert truncated.raw_text.encode() == lines[2]
    garbage = records["PARSE_ERROR:input.jsonl.out:6"]
    assert garbage.source_file == "input.jsonl.out"
    assert "not valid JSON" in garbage.error_message
    assert job.cleanup_completed_at is not None


async def test_a_manifest_mismatch_is_a_fetch_failure(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    arn = await submit(5)
    await control.finish(arn, "Completed")
    key = _folder(arn) + "manifest.json.out"
    manifest = json.loads(await read_object(s3, key))
    manifest["processedRecordCount"] += 2
    manifest["successRecordCount"] += 2
    await s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest).encode())

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.RESULT_FETCH_FAILED
    assert job.last_error is not None
    assert "5 processed records stored, manifest says 7" in job.last_error
    assert job.cleanup_completed_at is None
    assert len(await list_keys(s3, _folder(arn))) == 2


async def test_a_permanent_bedrock_error_fails_the_job_at_once(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: JobFactory
) -> None:
    arn = await submit(2)
    await control.set_job_faults(arn, {"permanent_error": "AccessDeniedException"})

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.last_error is not None and "AccessDeniedException" in job.last_error
    assert (await control.calls())["GetModelInvocationJob"] == 2  # track + one check, no retries


async def test_transient_errors_that_outlast_the_retries_leave_the_job_for_the_next_pass(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: JobFactory
) -> None:
    arn = await submit(2)
    await control.finish(arn, "Completed")
    await control.set_job_faults(arn, {"throttle_rate": 1.0})

    first = await supervisor.run_pass()
    job = await runtime.store.get_job(arn)
    assert first.as_dict()["check_failed"] == 1
    assert job is not None and job.status is JobStatus.IN_PROGRESS

    await control.set_job_faults(arn, None)
    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.COMPLETED


async def test_a_half_fetched_job_is_fetched_again_without_duplicates(
    make_settings: Any,
    clock: FakeClock,
    control: Any,
    runtime: Runtime,
    s3: Any,
    submit: JobFactory,
) -> None:
    arn = await submit(12)
    await control.finish(arn, "Completed")
    # What a crash mid-ingest leaves: Bedrock's status recorded, some records, no fetched mark.
    from batch_poller.domain import BedrockStatus
    from batch_poller.records import parse_line

    lines = (await read_object(s3, _folder(arn) + "input.jsonl.out")).splitlines()
    some = [
        parse_line(line, source_file="input.jsonl.out", line_number=n, store_model_input=False)
        for n, line in enumerate(lines[:4], start=1)
    ]
    async with leased(runtime.store, arn, clock.now()):
        await runtime.store.record_check(
            arn,
            bedrock_status=BedrockStatus.COMPLETED,
            status=JobStatus.IN_PROGRESS,
            message=None,
            completed_at=clock.now(),
            now=clock.now(),
        )
        await runtime.store.write_records(arn, some, clock.now())

    async with open_runtime(make_settings(), clock=clock) as restarted:
        await build_supervisor(restarted).run_pass(check_all=True)
        job = await restarted.store.get_job(arn)
        counts = await restarted.store.record_counts(arn)

    assert job is not None and job.status is JobStatus.COMPLETED
    assert counts.total == 12 and counts.ok == 12
    assert (await control.calls())["GetModelInvocationJob"] == 1  # tracked once, not re-checked


async def test_jobs_that_finished_while_the_daemon_was_down_are_fetched_in_the_first_pass(
    make_settings: Any, clock: FakeClock, control: Any, runtime: Runtime, submit: JobFactory
) -> None:
    arns = [await submit(3) for _ in range(3)]
    await build_supervisor(runtime).run_pass()  # all checked: Submitted
    for arn in arns:
        await control.finish(arn, "Completed")

    settings = make_settings(poller={"check_interval_seconds": 3600})
    async with open_runtime(settings, clock=clock) as restarted:
        supervisor = build_supervisor(restarted)
        normal = await supervisor.run_pass()
        first = await supervisor.run_pass(check_all=True)
        jobs = [await restarted.store.get_job(arn) for arn in arns]

    assert normal.jobs == 0  # within the check interval, a normal pass would wait
    assert first.as_dict()["fetched"] == 3
    assert all(j is not None and j.status is JobStatus.COMPLETED for j in jobs)

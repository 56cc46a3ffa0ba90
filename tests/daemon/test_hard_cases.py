"""Cases where results could be lost or jobs stuck: duplicate ids, id-less partial inputs, lines
too long to keep, shared input folders, leases held by other daemons, and a wrongly failed job."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from batch_poller.app import build_supervisor, open_runtime
from batch_poller.domain import JobStatus, job_id_from_arn
from batch_poller.runtime import Runtime
from batch_poller.store.guards import DEFAULT_LEASE as LEASE
from batch_poller.store.tables import bedrock_batch_jobs
from batch_poller.supervisor import Held, Supervisor
from batch_poller.tracking import TrackError, track_jobs
from tests.daemon.test_lifecycle import stored_records
from tests.daemon_fixtures import FakeClock
from tests.helpers import (
    BUCKET,
    create_job,
    lease_to_another,
    list_keys,
    make_records,
    nova_input,
    put_input,
)


async def test_the_same_record_ids_in_two_input_files_are_both_kept(
    supervisor: Supervisor, runtime: Runtime, control: Any, bedrock: Any, s3: Any
) -> None:
    await put_input(s3, "two/part-1.jsonl", make_records(4, prefix="r"))
    await put_input(s3, "two/part-2.jsonl", make_records(4, prefix="r"))
    arn = await create_job(bedrock, f"s3://{BUCKET}/two/")
    await track_jobs(runtime, [arn], f"s3://{BUCKET}/two/")
    await control.finish(arn, "Completed")

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    records = await stored_records(runtime, arn)
    assert job is not None and job.status is JobStatus.COMPLETED
    assert len(records) == 8
    renamed = [rid for rid in records if "@" in rid]
    assert len(renamed) == 4
    assert all(records[rid].source_file == "part-2.jsonl.out" for rid in renamed)


async def test_a_partial_job_whose_input_has_records_without_ids_keeps_its_input(
    supervisor: Supervisor, runtime: Runtime, control: Any, bedrock: Any, s3: Any
) -> None:
    records = make_records(6)
    records[2] = {"modelInput": nova_input("no id")}
    uri = await put_input(s3, "noid/input.jsonl", records)
    arn = await create_job(bedrock, uri)
    await track_jobs(runtime, [arn], f"s3://{BUCKET}/noid/")
    await control.finish(arn, "PartiallyCompleted")

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.RESULT_FETCH_FAILED
    assert job.last_error is not None and "1 input records have no recordId" in job.last_error
    assert await list_keys(s3, "noid/") == ["noid/input.jsonl"]


async def test_a_line_over_the_limit_is_kept_as_an_error_and_blocks_cleanup_until_forced(
    make_settings: Any, clock: FakeClock, control: Any, bedrock: Any, s3: Any
) -> None:
    await control.freeze_clock()
    records = [
        {"recordId": "small", "modelInput": nova_input("short")},
        {"recordId": "large", "modelInput": nova_input("word " * 600)},
    ]
    uri = await put_input(s3, "long/input.jsonl", records)
    arn = await create_job(bedrock, uri)
    await control.finish(arn, "Completed")
    async with open_runtime(make_settings(results={"max_line_bytes": 1024}), clock=clock) as rt:
        await track_jobs(rt, [arn], f"s3://{BUCKET}/long/")
        supervisor = build_supervisor(rt)
        await supervisor.run_pass()
        stored = await stored_records(rt, arn)
        refused = await rt.store.get_job(arn)
        kept = await list_keys(s3, "output/")
        assert refused is not None
        await supervisor.clean_now(refused, force=True)
        forced = await rt.store.get_job(arn)

    assert stored["small"].outcome == "ok"
    assert stored["large"].error_code == "LINE_TOO_LONG"
    assert "over the 1024 limit" in stored["large"].error_message
    assert refused.status is JobStatus.COMPLETED and refused.cleanup_completed_at is None
    assert refused.last_error is not None and "max_line_bytes" in refused.last_error
    assert len(kept) == 2
    assert forced is not None and forced.cleanup_completed_at is not None
    assert await list_keys(s3, "output/") == [] and await list_keys(s3, "long/") == []


async def test_a_shared_input_folder_goes_with_the_last_job_that_needs_it(
    supervisor: Supervisor, runtime: Runtime, control: Any, bedrock: Any, s3: Any
) -> None:
    uri = await put_input(s3, "shared/input.jsonl", make_records(3))
    first = await create_job(bedrock, uri, name="first")
    second = await create_job(bedrock, uri, name="second")
    for arn in (first, second):
        await track_jobs(runtime, [arn], f"s3://{BUCKET}/shared/")
    await control.finish(first, "Completed")

    await supervisor.run_pass()
    waiting = await runtime.store.get_job(first)

    assert waiting is not None and waiting.cleanup_completed_at is None
    assert waiting.last_error is not None and second in waiting.last_error
    assert await list_keys(s3, f"output/{job_id_from_arn(first)}/") == []  # its own output went
    assert await list_keys(s3, "shared/") == ["shared/input.jsonl"]

    await control.finish(second, "Completed")
    await supervisor.run_pass()
    await supervisor.run_pass()

    jobs = [await runtime.store.get_job(arn) for arn in (first, second)]
    assert all(j is not None and j.cleanup_completed_at is not None for j in jobs)
    assert await list_keys(s3, "shared/") == [] and await list_keys(s3, "output/") == []


async def test_an_input_prefix_must_be_the_jobs_own_folder(
    runtime: Runtime, bedrock: Any, s3: Any, endpoints: Any
) -> None:
    uri = await put_input(s3, "batches/one/input.jsonl", make_records(1))
    arn = await create_job(bedrock, uri)

    with pytest.raises(TrackError, match="give s3://batch-data/batches/one/ or a folder"):
        await track_jobs(runtime, [arn], f"s3://{BUCKET}/batches/two/")
    tracked = await track_jobs(runtime, [arn], f"s3://{BUCKET}/batches/one/")

    assert tracked[0].new


async def test_tracking_again_with_another_input_folder_is_refused_naming_the_first(
    runtime: Runtime, bedrock: Any, s3: Any, endpoints: Any
) -> None:
    uri = await put_input(s3, "in/j/sub/input.jsonl", make_records(1))
    arn = await create_job(bedrock, uri)
    await track_jobs(runtime, [arn], f"s3://{BUCKET}/in/j/sub/")

    again = await track_jobs(runtime, [arn], f"s3://{BUCKET}/in/j/sub/")
    with pytest.raises(TrackError, match=r"already tracked with the input folder .*/in/j/sub/"):
        await track_jobs(runtime, [arn], f"s3://{BUCKET}/in/j/sub/deeper/")

    assert not again[0].new


async def test_an_ancestor_of_the_input_folder_is_refused_and_untracked_data_survives(
    supervisor: Supervisor, runtime: Runtime, control: Any, bedrock: Any, s3: Any
) -> None:
    # The campaign's case: job3's input under in/job3/, an untracked job's data in in/job0/.
    untracked = await put_input(s3, "in/job0/records.jsonl", make_records(2, prefix="u"))
    uri = await put_input(s3, "in/job3/records.jsonl", make_records(2))
    arn = await create_job(bedrock, uri)

    with pytest.raises(TrackError, match="give s3://batch-data/in/job3/") as refused:
        await track_jobs(runtime, [arn], f"s3://{BUCKET}/in/")
    await track_jobs(runtime, [arn])
    await control.finish(arn, "Completed")
    await supervisor.run_pass()

    assert "s3://batch-data/in/ is not the job's own input folder" in str(refused.value)
    job = await runtime.store.get_job(arn)
    assert job is not None and job.s3_folder is None and job.cleanup_completed_at is not None
    assert await list_keys(s3, "in/") == [
        untracked.removeprefix(f"s3://{BUCKET}/"),
        "in/job3/records.jsonl",
    ]


async def test_a_stored_input_folder_broader_than_the_jobs_own_is_never_deleted(
    supervisor: Supervisor, runtime: Runtime, control: Any, bedrock: Any, s3: Any
) -> None:
    """A row written before tracking checked the folder is checked again at cleanup."""
    await put_input(s3, "in/job0/records.jsonl", make_records(2, prefix="u"))
    uri = await put_input(s3, "in/job3/records.jsonl", make_records(2))
    arn = await create_job(bedrock, uri)
    await track_jobs(runtime, [arn])
    async with runtime.store.engine.begin() as conn:
        await conn.execute(bedrock_batch_jobs.update().values(s3_folder=f"s3://{BUCKET}/in/"))
    await control.finish(arn, "Completed")

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.COMPLETED
    assert job.cleanup_completed_at is None
    assert job.last_error is not None and "give s3://batch-data/in/job3/" in job.last_error
    assert await list_keys(s3, "in/") == ["in/job0/records.jsonl", "in/job3/records.jsonl"]
    assert await list_keys(s3, f"output/{job_id_from_arn(arn)}/") == []


async def test_a_job_leased_by_another_daemon_is_left_alone_until_the_lease_runs_out(
    supervisor: Supervisor, runtime: Runtime, control: Any, clock: FakeClock, submit: Any
) -> None:
    arn = await submit(3)
    await control.finish(arn, "Completed")
    now = clock.now()
    other = await lease_to_another(runtime.store, arn, now)

    held = await supervisor.run_pass()
    clock.current += LEASE + timedelta(seconds=1)
    taken_over = await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert held.jobs == 0
    assert held.held == (Held(arn, other, now + LEASE),)
    assert taken_over.as_dict()["fetched"] == 1 and taken_over.held == ()
    assert job is not None and job.status is JobStatus.COMPLETED
    assert job.claimed_by is None  # released after the pass


async def test_tracking_again_requeues_a_job_failed_by_a_denied_check(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: Any
) -> None:
    arn = await submit(3)
    await control.set_job_faults(arn, {"permanent_error": "AccessDeniedException"})
    await supervisor.run_pass()
    failed = await runtime.store.get_job(arn)
    assert failed is not None and failed.status is JobStatus.FAILED

    await control.set_job_faults(arn, None)
    await control.finish(arn, "Completed")
    await track_jobs(runtime, [arn])
    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.COMPLETED and job.total_records == 3


async def test_a_job_that_had_failed_when_tracked_is_logged_like_any_failure(
    runtime: Runtime, bedrock: Any, s3: Any, control: Any
) -> None:
    uri = await put_input(s3, "late/input.jsonl", make_records(2))
    arn = await create_job(bedrock, uri, name="late", output_uri=f"s3://{BUCKET}/out/")
    await control.finish(arn, "Failed", "The input file holds no valid record.")

    with capture_logs() as logs:
        await track_jobs(runtime, [arn])
        await track_jobs(runtime, [arn])  # tracked again: not a new failure

    failed = [entry for entry in logs if entry["event"] == "job_failed"]
    assert len(failed) == 1 and failed[0]["log_level"] == "warning"
    assert failed[0]["job_arn"] == arn
    assert failed[0]["message"] == "The input file holds no valid record."

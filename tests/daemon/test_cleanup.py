"""Cleanup against real S3: what is deleted, what never is, and retries after a failure."""

from __future__ import annotations

import dataclasses
from typing import Any

from batch_poller.domain import JobStatus, job_id_from_arn
from batch_poller.runtime import Runtime
from batch_poller.supervisor import Supervisor
from batch_poller.tracking import track_jobs
from tests.daemon_fixtures import JobFactory
from tests.helpers import BUCKET, create_job, list_keys, make_records, put_input


async def test_cleaning_job_1_leaves_job_10_and_its_neighbours_alone(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    arn = await submit(3)
    neighbours = ["jobs/job-10/input.jsonl", "jobs/job-1x", "jobs/job-1.jsonl"]
    for key in neighbours:
        await s3.put_object(Bucket=BUCKET, Key=key, Body=b"keep me")
    job_id = job_id_from_arn(arn)
    await s3.put_object(Bucket=BUCKET, Key=f"out/{job_id}0/other.jsonl.out", Body=b"keep")
    await control.finish(arn, "Completed")

    await supervisor.run_pass()

    assert await list_keys(s3, "jobs/") == sorted(neighbours)
    assert await list_keys(s3, "out/") == [f"out/{job_id}0/other.jsonl.out"]


async def test_a_refused_cleanup_stays_pending_and_is_retried_on_later_passes(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    arn = await submit(3)
    await control.finish(arn, "Completed")
    cleanup = runtime.settings.cleanup.model_copy(update={"managed_prefixes": ["s3://elsewhere/"]})
    runtime.settings = runtime.settings.model_copy(update={"cleanup": cleanup})

    await supervisor.run_pass()
    await supervisor.run_pass()
    refused = await runtime.store.get_job(arn)

    assert refused is not None
    assert refused.status is JobStatus.COMPLETED
    assert refused.cleanup_completed_at is None
    assert refused.cleanup_attempts == 2
    assert refused.last_error is not None and "managed_prefixes" in refused.last_error
    assert "(checked: s3://elsewhere/)" in refused.last_error
    assert len(await list_keys(s3, "jobs/job-1/")) == 1

    allowed = cleanup.model_copy(update={"managed_prefixes": [f"s3://{BUCKET}/"]})
    runtime.settings = runtime.settings.model_copy(update={"cleanup": allowed})
    await supervisor.run_pass()

    cleaned = await runtime.store.get_job(arn)
    assert cleaned is not None and cleaned.cleanup_completed_at is not None
    assert cleaned.last_error is None
    assert await list_keys(s3, "jobs/job-1/") == []


async def test_cleanup_turned_off_keeps_everything_and_marks_nothing(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    arn = await submit(3)
    await control.finish(arn, "Completed")
    runtime.settings = runtime.settings.model_copy(
        update={"cleanup": runtime.settings.cleanup.model_copy(update={"enabled": False})}
    )

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.COMPLETED
    assert job.cleanup_completed_at is None and job.cleanup_attempts == 0
    assert len(await list_keys(s3, "jobs/job-1/")) == 1
    assert len(await list_keys(s3, f"out/{job_id_from_arn(arn)}/")) == 2


async def test_a_folder_holding_another_jobs_unstored_output_is_not_deleted(
    supervisor: Supervisor, runtime: Runtime, control: Any, bedrock: Any, s3: Any
) -> None:
    # Job A's input folder s3://bucket/shared/ also receives job B's output under shared/out/.
    uri_a = await put_input(s3, "shared/a.jsonl", make_records(2, prefix="a"))
    uri_b = await put_input(s3, "elsewhere/b.jsonl", make_records(2, prefix="b"))
    arn_a = await create_job(bedrock, uri_a, name="a", output_uri=f"s3://{BUCKET}/out-a/")
    arn_b = await create_job(bedrock, uri_b, name="b", output_uri=f"s3://{BUCKET}/shared/out/")
    await track_jobs(runtime, [arn_a], f"s3://{BUCKET}/shared/")
    await track_jobs(runtime, [arn_b])
    await control.finish(arn_a, "Completed")

    await supervisor.run_pass()
    job_a = await runtime.store.get_job(arn_a)

    assert job_a is not None and job_a.cleanup_completed_at is None
    assert job_a.last_error is not None and arn_b in job_a.last_error
    assert await list_keys(s3, "shared/") == ["shared/a.jsonl"]

    await control.finish(arn_b, "Completed")
    await supervisor.run_pass()
    await supervisor.run_pass()

    jobs = [await runtime.store.get_job(arn) for arn in (arn_a, arn_b)]
    assert all(j is not None and j.cleanup_completed_at is not None for j in jobs)
    assert await list_keys(s3, "shared/") == []


async def test_bytes_freed_count_every_deleted_object(
    supervisor: Supervisor, runtime: Runtime, control: Any, s3: Any, submit: JobFactory
) -> None:
    arn = await submit(4)
    await control.finish(arn, "Completed")
    sizes = 0
    for prefix in ("jobs/job-1/", f"out/{job_id_from_arn(arn)}/"):
        page = await s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        sizes += sum(item["Size"] for item in page["Contents"])

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.bytes_freed == sizes
    assert dataclasses.asdict(job)["cleanup_attempts"] == 0

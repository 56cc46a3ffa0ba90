"""While a job runs, Bedrock's record counts (processed of total) reach the job's row from a
GetModelInvocationJob and from a listing alike, and show in `jobs` and the job's document."""

from __future__ import annotations

from typing import Any

from batch_poller.aws.bedrock import BedrockJob
from batch_poller.rows import Progress
from batch_poller.runtime import Runtime
from batch_poller.supervisor import Supervisor
from batch_poller.views import job_summary, records_shown


async def _run_until_in_progress(control: Any, arn: str) -> dict[str, Any]:
    for _ in range(20):
        job = await control.job(arn)
        if job["status"] == "InProgress" and job.get("processedRecordCount", 0) > 0:
            return job
        await control.advance_clock(0.5)
    raise AssertionError(f"{arn} never ran: {job}")


async def test_a_get_brings_the_progress_of_a_running_job(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: Any
) -> None:
    arn = await submit(40)
    running = await _run_until_in_progress(control, arn)

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None
    assert (job.progress_processed, job.progress_total) == (running["processedRecordCount"], 40)
    assert 0 < job.progress_processed < 40  # type: ignore[operator]
    assert records_shown(job) == f"{job.progress_processed}/40"
    summary = job_summary(job)
    assert summary["progress_total"] == 40 and summary["total_records"] is None


async def test_a_listing_brings_the_progress_of_jobs_it_shows_unchanged(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: Any
) -> None:
    arns = [await submit(30) for _ in range(3)]
    for arn in arns:
        await _run_until_in_progress(control, arn)
    await supervisor.run_pass()  # each changed to InProgress: read with a Get
    await control.advance_clock(0.5)
    now_running = {arn: (await control.job(arn))["processedRecordCount"] for arn in arns}
    before = await control.calls()

    await supervisor.run_pass()

    after = await control.calls()
    assert after.get("GetModelInvocationJob") == before.get("GetModelInvocationJob")
    for arn in arns:
        job = await runtime.store.get_job(arn)
        assert job is not None and job.progress_processed == now_running[arn]


def test_counts_that_make_no_sense_are_unknown() -> None:
    base = {"jobArn": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123def456"}
    odd = BedrockJob.from_api(
        {**base, "status": "InProgress", "processedRecordCount": -1, "totalRecordCount": True}
    )
    assert odd.progress == Progress()
    fine = BedrockJob.from_api(
        {**base, "status": "InProgress", "processedRecordCount": 3, "totalRecordCount": 9}
    )
    assert fine.progress == Progress(processed=3, total=9)

"""A pass discovers status changes with ListModelInvocationJobs and reads with a Get only the
jobs that changed or that the listing did not show; it sees every change per-job polling would,
and falls back to per-job checks when listing is denied."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from batch_poller.domain import BedrockStatus, JobStatus
from batch_poller.runtime import Runtime
from batch_poller.store.tables import bedrock_batch_jobs
from batch_poller.supervisor import Supervisor


async def _calls_during(control: Any, work: Any) -> dict[str, int]:
    before = await control.calls()
    await work
    after = await control.calls()
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }


async def test_unchanged_jobs_cost_one_listing_and_no_gets(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: Any
) -> None:
    arns = [await submit(1) for _ in range(12)]

    calls = await _calls_during(control, supervisor.run_pass())

    assert calls == {"ListModelInvocationJobs": 1}
    for arn in arns:
        job = await runtime.store.get_job(arn)
        assert job is not None and job.last_checked_at == runtime.clock.now()


async def test_only_the_jobs_that_changed_are_read_with_a_get(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: Any
) -> None:
    arns = [await submit(2) for _ in range(8)]
    await control.finish(arns[2], "Completed")
    await control.finish(arns[5], "Failed", "no capacity")
    await control.advance(arns[6])  # Submitted -> Validating

    calls = await _calls_during(control, supervisor.run_pass())

    assert calls == {"ListModelInvocationJobs": 1, "GetModelInvocationJob": 3}
    statuses = {arn: (await runtime.store.get_job(arn)) for arn in arns}
    assert statuses[arns[2]].status is JobStatus.COMPLETED  # type: ignore[union-attr]
    assert statuses[arns[5]].status is JobStatus.FAILED  # type: ignore[union-attr]
    assert statuses[arns[5]].message == "no capacity"  # type: ignore[union-attr]
    assert statuses[arns[6]].bedrock_status is BedrockStatus.VALIDATING  # type: ignore[union-attr]


async def test_a_paged_listing_still_sees_every_change(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: Any
) -> None:
    arns = [await submit(1) for _ in range(12)]
    for arn in arns[::3]:
        await control.finish(arn, "Completed")
    original = runtime.bedrock.list_jobs

    def small_pages(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **{**kwargs, "page_size": 5})

    runtime.bedrock.list_jobs = small_pages  # type: ignore[method-assign]
    calls = await _calls_during(control, supervisor.run_pass())

    assert calls == {"ListModelInvocationJobs": 3, "GetModelInvocationJob": 4}
    for arn in arns[::3]:
        job = await runtime.store.get_job(arn)
        assert job is not None and job.status is JobStatus.COMPLETED


async def test_a_job_outside_the_listed_window_is_read_with_a_get(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: Any
) -> None:
    await control.configure(durations={"submitted": 1000})
    arns = [await submit(1)]
    await control.advance_clock(10)  # the others are submitted 10 s later
    arns += [await submit(1) for _ in range(3)]
    await control.finish(arns[0], "Completed")
    # Recorded as submitted a day later than it was: the listing's window starts after it.
    job = await runtime.store.get_job(arns[0])
    assert job is not None and job.submitted_at is not None
    async with runtime.store.engine.begin() as conn:
        await conn.execute(
            update(bedrock_batch_jobs)
            .where(bedrock_batch_jobs.c.batch_job_arn == arns[0])
            .values(submitted_at=job.submitted_at + timedelta(days=1))
        )

    calls = await _calls_during(control, supervisor.run_pass())

    job = await runtime.store.get_job(arns[0])
    assert job is not None and job.status is JobStatus.COMPLETED
    assert calls == {"ListModelInvocationJobs": 1, "GetModelInvocationJob": 1}


async def test_when_listing_is_denied_jobs_are_checked_one_by_one(
    supervisor: Supervisor, runtime: Runtime, control: Any, submit: Any
) -> None:
    arns = [await submit(1) for _ in range(5)]
    await control.finish(arns[1], "Completed")
    await control.configure(
        faults={
            "permanent_error": "AccessDeniedException",
            "operations": ["ListModelInvocationJobs"],
        }
    )

    first = await _calls_during(control, supervisor.run_pass())
    second = await _calls_during(control, supervisor.run_pass())

    job = await runtime.store.get_job(arns[1])
    assert job is not None and job.status is JobStatus.COMPLETED
    assert first["ListModelInvocationJobs:AccessDeniedException"] == 1
    assert first["GetModelInvocationJob"] == 5
    assert "ListModelInvocationJobs" not in second  # not asked again for a while
    assert second["GetModelInvocationJob"] == 4


async def test_listing_sees_what_per_job_polling_sees(
    supervisor: Supervisor, runtime: Runtime, control: Any, bedrock: Any, submit: Any
) -> None:
    """Every job, every status: the stored status equals what a Get of each job returns."""
    arns = [await submit(1) for _ in range(10)]
    outcomes = ["Completed", "PartiallyCompleted", "Failed", "Expired", "Stopped"]
    for arn, outcome in zip(arns, outcomes, strict=False):
        await control.finish(arn, outcome)
    for arn in arns[5:8]:
        await control.advance(arn)
    await bedrock.stop_model_invocation_job(jobIdentifier=arns[9])

    await supervisor.run_pass()

    for arn in arns:
        truth = (await bedrock.get_model_invocation_job(jobIdentifier=arn))["status"]
        job = await runtime.store.get_job(arn)
        assert job is not None and job.bedrock_status is BedrockStatus(truth), arn

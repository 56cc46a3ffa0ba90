"""Groups against the emulator: the application's unit of work made of several batch jobs,
compiled once when the last of its jobs settles, with its jobs' folders kept until then."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from batch_poller.domain import GroupStatus, JobStatus
from batch_poller.runtime import Runtime
from batch_poller.store import GroupError
from batch_poller.supervisor import Supervisor
from batch_poller.tracking import TrackError, track_jobs
from tests.daemon_fixtures import BACKENDS
from tests.helpers import list_keys


async def _events(runtime: Runtime, **subject: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = await runtime.store.outbox.events(**subject)
    return events


@BACKENDS
async def test_a_group_of_three_jobs_is_compiled_once_and_cleaned_after(
    runtime: Runtime, supervisor: Supervisor, submit: Any, control: Any, s3: Any
) -> None:
    done = await submit(10)
    partial = await submit(12, tags={"emulator:error-rate": "0.25"})
    failed = await submit(5)
    store = runtime.store
    # Tracked in two calls (the application submits in batches), then sealed.
    await track_jobs(runtime, [done, partial], group="analysis-42")
    await control.finish(done, "Completed")
    await control.finish(partial, "PartiallyCompleted")
    await supervisor.run_pass()

    # Two jobs stored, the group still open: nothing compiled, no folder deleted.
    group = await store.get_group("analysis-42")
    assert group is not None and group.status is GroupStatus.OPEN and group.jobs == 2
    for arn in (done, partial):
        job = await store.get_job(arn)
        assert job is not None and job.results_fetched_at is not None
        assert job.cleanup_completed_at is None and job.group_compiled_at is None
    assert await list_keys(s3, "jobs/job-1/") == ["jobs/job-1/input.jsonl"]

    await track_jobs(runtime, [failed], group="analysis-42", seal=True)
    group = await store.get_group("analysis-42")
    assert group is not None and group.status is GroupStatus.SEALED and group.jobs == 3
    await control.finish(failed, "Failed", "the model refused the input")
    await supervisor.run_pass()

    group = await store.get_group("analysis-42")
    jobs = [await store.get_job(arn) for arn in (done, partial, failed)]
    assert group is not None and all(job is not None for job in jobs)
    assert [job.status for job in jobs if job] == [
        JobStatus.COMPLETED,
        JobStatus.PARTIALLY_COMPLETED,
        JobStatus.FAILED,
    ]
    assert group.status is GroupStatus.FAILED and group.compiled_at is not None
    assert (group.jobs, group.failed_jobs) == (3, 1)
    stored = [job for job in jobs if job and job.total_records is not None]
    assert group.total_records == sum(job.total_records or 0 for job in stored) > 0
    assert group.success_records == sum(job.success_records or 0 for job in stored)
    assert group.error_records == sum(job.error_records or 0 for job in stored) > 0
    assert group.input_tokens == sum(job.input_tokens or 0 for job in stored) > 0
    assert group.output_tokens == sum(job.output_tokens or 0 for job in stored)
    assert group.cost == sum((job.cost or Decimal(0) for job in stored), Decimal(0))
    assert group.first_submitted_at == min(job.submitted_at for job in jobs if job)
    assert group.last_completed_at == max(job.completed_at for job in jobs if job)
    # Compiled once, in the pass that settled the last job; the folders went after it.
    compiles = await _events(runtime, group_name="analysis-42")
    assert [e["type"] for e in compiles if e["type"] == "group.completed"] == ["group.completed"]
    assert compiles[-1]["group"]["status"] == "FAILED"
    for arn in (done, partial):
        job = await store.get_job(arn)
        assert job is not None and job.group_compiled_at == group.compiled_at
        assert job.cleanup_completed_at is not None
        assert job.cleanup_completed_at >= group.compiled_at
    assert await list_keys(s3, "jobs/job-1/") == []
    # A failed job's files are never deleted.
    assert await list_keys(s3, "jobs/job-3/") == ["jobs/job-3/input.jsonl"]

    # Another pass compiles nothing again.
    await supervisor.run_pass()
    again = await _events(runtime, group_name="analysis-42")
    assert [e["type"] for e in again].count("group.completed") == 1


async def test_a_group_without_failures_or_errors_is_completed(
    runtime: Runtime, supervisor: Supervisor, submit: Any, control: Any
) -> None:
    first, second = await submit(4), await submit(6)
    await track_jobs(runtime, [first, second], group="clean-run", seal=True)
    for arn in (first, second):
        await control.finish(arn, "Completed")
    await supervisor.run_pass()
    group = await runtime.store.get_group("clean-run")
    assert group is not None and group.status is GroupStatus.COMPLETED
    assert (group.total_records, group.success_records, group.error_records) == (10, 10, 0)


async def test_sealing_a_group_whose_jobs_have_settled_compiles_it_then_and_there(
    runtime: Runtime, supervisor: Supervisor, submit: Any, control: Any, s3: Any
) -> None:
    arn = await submit(3)
    await track_jobs(runtime, [arn], group="late-seal")
    await control.finish(arn, "PartiallyCompleted")
    await supervisor.run_pass()
    assert await list_keys(s3, "jobs/job-1/") == ["jobs/job-1/input.jsonl"]

    group = await runtime.store.seal_group("late-seal", runtime.clock.now())
    assert group.status is GroupStatus.PARTIALLY_COMPLETED and group.compiled_at is not None
    await supervisor.run_pass()
    assert await list_keys(s3, "jobs/job-1/") == []


async def test_what_a_group_refuses_is_refused_before_anything_is_stored(
    runtime: Runtime, submit: Any
) -> None:
    first, second, third = await submit(2), await submit(2), await submit(2)
    await track_jobs(runtime, [first], group="g1", seal=True)

    with pytest.raises(TrackError, match="group 'g1' is sealed: it takes no more jobs"):
        await track_jobs(runtime, [second], group="g1")
    with pytest.raises(TrackError, match=r"already in group 'g1': a job belongs to one group"):
        await track_jobs(runtime, [first], group="g2")
    with pytest.raises(TrackError, match="not a group name"):
        await track_jobs(runtime, [second], group="bad name/../")
    with pytest.raises(TrackError, match="sealing needs the group the jobs are put in"):
        await track_jobs(runtime, [second], seal=True)
    with pytest.raises(GroupError, match="no group 'missing'"):
        await runtime.store.seal_group("missing", runtime.clock.now())
    # An empty group cannot be sealed: it would be compiled with nothing in it.
    await runtime.store.group_jobs([], "empty", runtime.clock.now())
    with pytest.raises(GroupError, match="has no jobs"):
        await runtime.store.seal_group("empty", runtime.clock.now())
    # Nothing of the refused calls was stored.
    assert [job.batch_job_arn for job in await runtime.store.group_members("g1")] == [first]
    assert await runtime.store.get_group("g2") is None
    job = await runtime.store.get_job(second)
    assert job is not None and job.group_name is None
    assert third  # tracked without a group, as before
    assert (await runtime.store.get_group("empty")) is not None


async def test_jobs_and_groups_settle_as_events_in_the_outbox(
    runtime: Runtime, supervisor: Supervisor, submit: Any, control: Any
) -> None:
    ok, bad = await submit(3), await submit(3)
    await track_jobs(runtime, [ok, bad], group="evented", seal=True)
    await control.finish(ok, "Completed")
    await control.finish(bad, "Failed", "the input was refused")
    await supervisor.run_pass()

    settled = await _events(runtime, batch_job_arn=ok)
    failed = await _events(runtime, batch_job_arn=bad)
    assert [e["type"] for e in settled] == ["job.settled"]
    assert settled[0]["job"]["records"] == {"total": 3, "ok": 3, "error": 0}
    assert settled[0]["job"]["group"] == "evented"
    assert [e["type"] for e in failed] == ["job.failed"]
    assert failed[0]["job"]["status"] == "FAILED"
    assert failed[0]["job"]["message"] == "the input was refused"
    compiled = await _events(runtime, group_name="evented")
    assert [e["type"] for e in compiled][-1] == "group.completed"
    assert len({e["id"] for e in compiled}) == len(compiled)
    # An event carries its subject's totals, never the records.
    assert set(settled[0]) == {"id", "type", "created_at", "job"}
    assert set(compiled[-1]) == {"id", "type", "created_at", "group"}

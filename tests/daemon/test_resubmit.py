"""`resubmit`: a finished job's NOT_PROCESSED and retryable error records run again as a new
job of its group; once it completes, the group counts each record by its latest version."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from batch_poller.cli import main
from batch_poller.domain import GroupStatus, JobStatus
from batch_poller.emulator.server import Endpoints
from batch_poller.records import NOT_PROCESSED
from batch_poller.runtime import Runtime
from batch_poller.store import RecordScope
from batch_poller.submission.lines import SubmitError
from batch_poller.submission.resubmit import plan_resubmission, resubmit
from batch_poller.supervisor import Supervisor
from batch_poller.tracking import track_jobs
from tests.helpers import BUCKET, create_job, make_records, put_input
from tests.processes import write_config

FOLDER = f"s3://{BUCKET}/retries/"


async def partial_job(
    runtime: Runtime,
    supervisor: Supervisor,
    control: Any,
    bedrock: Any,
    s3: Any,
    *,
    error_code: int,
    records: int = 120,
) -> str:
    """A PartiallyCompleted job, tracked and stored: a quarter of its records never processed,
    a tenth of the rest failed with `error_code`."""
    uri = await put_input(s3, "partial/input.jsonl", make_records(records, prefix="p"))
    tags = {"emulator:error-rate": "0.1", "emulator:error-code": str(error_code)}
    arn = await create_job(bedrock, uri, name="partial-job", tags=tags)
    await track_jobs(runtime, [arn], f"s3://{BUCKET}/partial/")
    await control.finish(arn, "PartiallyCompleted")
    await supervisor.run_pass()
    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.PARTIALLY_COMPLETED
    return arn


async def error_codes(runtime: Runtime, arn: str) -> dict[str, str]:
    page = await runtime.store.records_page(RecordScope(job=arn), limit=1000, outcome="error")
    return {row.record_id: row.error_code or "" for _, row in page}


@pytest.fixture(autouse=True)
def small_jobs(runtime: Runtime) -> None:
    """Bedrock's minimum of 100 records a job would refuse these few records: lowered, as an
    account whose quota allows it would."""
    runtime.settings = runtime.settings.model_copy(
        update={"submit": runtime.settings.submit.model_copy(update={"min_records_per_job": 1})}
    )


async def test_a_partial_job_s_unprocessed_and_throttled_records_run_again_and_replace_them(
    runtime: Runtime, supervisor: Supervisor, control: Any, bedrock: Any, s3: Any
) -> None:
    arn = await partial_job(runtime, supervisor, control, bedrock, s3, error_code=429)
    before = await error_codes(runtime, arn)
    assert set(before.values()) == {NOT_PROCESSED, "429"}

    plan = await plan_resubmission(runtime, [await runtime.store.get_job(arn)])  # type: ignore[list-item]
    (retry,) = await resubmit(runtime, plan, folder=FOLDER)

    assert retry.state == "submitted" and retry.records == len(before)
    assert retry.arn is not None
    uploaded = await s3.get_object(Bucket=BUCKET, Key=retry.input_uri.split("/", 3)[3])
    lines = [orjson.loads(line) for line in (await uploaded["Body"].read()).splitlines()]
    # Exactly those records, each with its own id and its input as stored.
    assert sorted(line["recordId"] for line in lines) == sorted(before)
    assert all(line["modelInput"]["messages"] for line in lines)
    new = await runtime.store.get_job(retry.arn)
    assert new is not None and new.retries_of == arn
    group = await runtime.store.get_group(new.group_name or "")
    assert group is not None and group.status is GroupStatus.SEALED  # reopened: waits

    await control.finish(retry.arn, "Completed")
    await supervisor.run_pass()

    compiled = await runtime.store.get_group(new.group_name or "")
    assert compiled is not None and compiled.status is GroupStatus.COMPLETED
    assert (compiled.total_records, compiled.success_records, compiled.error_records) == (
        120,
        120,
        0,
    )
    # The history is kept: the old job's error rows are still there.
    assert await error_codes(runtime, arn) == before
    again = await plan_resubmission(runtime, await runtime.store.group_members(group.name))
    assert again.records == []
    # Asked of the original job alone, the same: its records' latest versions are right.
    original = await runtime.store.get_job(arn)
    assert original is not None
    assert (await plan_resubmission(runtime, [original])).records == []
    with pytest.raises(SubmitError, match="nothing to run again"):
        await resubmit(runtime, again, folder=FOLDER)


async def test_validation_errors_are_not_run_again_unless_named(
    runtime: Runtime, supervisor: Supervisor, control: Any, bedrock: Any, s3: Any
) -> None:
    arn = await partial_job(runtime, supervisor, control, bedrock, s3, error_code=400)
    codes = await error_codes(runtime, arn)
    job = await runtime.store.get_job(arn)
    assert job is not None

    default = await plan_resubmission(runtime, [job])
    named = await plan_resubmission(runtime, [job], ["400"])

    assert dict(default.counts()) == {NOT_PROCESSED: list(codes.values()).count(NOT_PROCESSED)}
    assert sum(named.counts().values()) == len(codes)


async def test_a_job_that_has_not_finished_has_nothing_to_run_again(
    runtime: Runtime, bedrock: Any, s3: Any
) -> None:
    uri = await put_input(s3, "running/input.jsonl", make_records(5))
    arn = await create_job(bedrock, uri, name="still-running")
    await track_jobs(runtime, [arn])
    job = await runtime.store.get_job(arn)
    assert job is not None

    with pytest.raises(SubmitError, match="no job here has finished"):
        await plan_resubmission(runtime, [job])


async def test_resubmit_from_the_command_line_shows_counts_first(
    runtime: Runtime,
    supervisor: Supervisor,
    control: Any,
    bedrock: Any,
    s3: Any,
    endpoints: Endpoints,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arn = await partial_job(runtime, supervisor, control, bedrock, s3, error_code=503)
    codes = await error_codes(runtime, arn)
    database = runtime.settings.database.url
    config = write_config(tmp_path, endpoints, database={"url": database})
    config.write_text(config.read_text() + "\n[submit]\nmin_records_per_job = 1\n")

    capsys.readouterr()
    code = await asyncio.to_thread(
        main, ["--config", str(config), "resubmit", "partial-job", "--dry-run"]
    )
    out, err = capsys.readouterr()

    assert code == 0, err
    assert out.startswith(f"{len(codes)} records to run again from 1 job(s): ")
    assert f"{list(codes.values()).count('503')} 503" in out
    uri = await put_input(s3, "whole/input.jsonl", make_records(5, prefix="w"))
    whole = await create_job(bedrock, uri, name="whole-job")
    await track_jobs(runtime, [whole])
    await control.finish(whole, "Completed")
    await supervisor.run_pass()
    nothing = await asyncio.to_thread(
        main, ["--config", str(config), "resubmit", "whole-job", "--dry-run"]
    )
    out, err = capsys.readouterr()
    assert nothing != 0
    assert out.startswith("0 records to run again from 1 job(s)")
    assert "nothing to run again" in err

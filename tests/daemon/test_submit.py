"""`submit`: local JSONL files checked, uploaded, created once at the emulator, tracked with the
input folder they own, then completed and stored like any other job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import batch_poller
from batch_poller.aws.s3 import S3Uri
from batch_poller.config import SubmitSettings
from batch_poller.domain import GroupStatus, JobStatus
from batch_poller.emulator.server import Endpoints
from batch_poller.runtime import Runtime
from batch_poller.store import RecordScope
from batch_poller.submission.launch import launch_submissions
from batch_poller.submission.lines import InputError
from batch_poller.submission.plan import SubmitLimits
from batch_poller.submission.submit import SubmitRequest, submit
from batch_poller.supervisor import Supervisor
from tests.helpers import BUCKET, NOVA, ROLE_ARN, ensure_bucket, make_records
from tests.processes import query, write_config


def write_input(path: Path, count: int, **changes: Any) -> Path:
    records = make_records(count, prefix="q")
    for index, record in changes.items():
        records[int(index.removeprefix("line")) - 1] = record
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def request(*files: Path | str, **extra: Any) -> SubmitRequest:
    values: dict[str, Any] = {
        "model_id": NOVA,
        "role_arn": ROLE_ARN,
        "folder": f"s3://{BUCKET}/submitted/",
        **extra,
    }
    return SubmitRequest(inputs=files, **values)


async def keys(s3: Any, prefix: str) -> list[str]:
    page = await s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in page.get("Contents", [])]


async def test_a_250_record_file_is_submitted_tracked_completed_and_stored(
    runtime: Runtime, supervisor: Supervisor, control: Any, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    source = write_input(tmp_path / "prompts.jsonl", 250)

    (job,) = await submit(runtime, request(source, name="daily prompts"))

    assert (job.state, job.records) == ("submitted", 250)
    assert job.name.startswith("daily-prompts-") and job.arn is not None
    tracked = await runtime.store.get_job(job.arn)
    assert tracked is not None
    assert tracked.s3_folder == job.input_uri.removesuffix("records.jsonl")
    uploaded = await s3.get_object(Bucket=BUCKET, Key=job.input_uri.split("/", 3)[3])
    assert await uploaded["Body"].read() == source.read_bytes()

    await control.finish(job.arn, "Completed")
    await supervisor.run_pass()

    stored = await runtime.store.get_job(job.arn)
    assert stored is not None and stored.status is JobStatus.COMPLETED
    totals = await runtime.store.record_counts(job.arn)
    assert totals.total == 250
    # The input folder it made was the job's own: cleaned up with the output.
    assert await keys(s3, job.input_uri.split("/", 3)[3]) == []


async def test_a_bad_line_37_is_refused_and_nothing_is_uploaded_or_created(
    runtime: Runtime, control: Any, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    source = write_input(tmp_path / "in.jsonl", 250, line37={"recordId": "x", "modelInput": []})
    before = await control.calls()

    with pytest.raises(InputError, match=rf"^{source} line 37: modelInput must be a JSON object"):
        await submit(runtime, request(source))

    assert await keys(s3, "submitted/") == []
    assert (await control.calls()).get("CreateModelInvocationJob", 0) == before.get(
        "CreateModelInvocationJob", 0
    )


async def test_submitting_the_same_input_twice_makes_one_job(
    runtime: Runtime, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    source = write_input(tmp_path / "in.jsonl", 120)

    first = await submit(runtime, request(source))
    again = await submit(runtime, request(source))

    assert [job.arn for job in again] == [job.arn for job in first]
    assert [job.state for job in again] == ["already submitted"]
    assert len(await runtime.store.list_jobs(None, limit=10)) == 1


async def test_a_job_created_but_not_tracked_is_found_again_by_its_token(
    runtime: Runtime, s3: Any, tmp_path: Path
) -> None:
    """A stop between CreateModelInvocationJob and the tracking: run again, the same token
    gets the job Bedrock made, which is tracked; no second job."""
    await ensure_bucket(s3, BUCKET)
    source = write_input(tmp_path / "in.jsonl", 120)
    original = runtime.store.track_job

    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # the process dies here

    runtime.store.track_job = crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        await submit(runtime, request(source))
    runtime.store.track_job = original  # type: ignore[method-assign]

    (job,) = await submit(runtime, request(source))

    assert job.state == "submitted"
    listed = [j async for j in runtime.bedrock.list_jobs()]
    assert [j.arn for j in listed if j.name == job.name] == [job.arn]


async def test_input_over_the_record_limit_becomes_jobs_of_one_sealed_group(
    runtime: Runtime, supervisor: Supervisor, control: Any, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    source = write_input(tmp_path / "in.jsonl", 1_200)
    limits = SubmitLimits(max_records=500, min_records=100)

    jobs = await submit(runtime, request(source), limits)

    assert [job.records for job in jobs] == [400, 400, 400]
    stored = [await runtime.store.get_job(job.arn or "") for job in jobs]
    groups = {job.group_name for job in stored if job is not None}
    assert len(groups) == 1 and None not in groups
    name = groups.pop() or ""
    group = await runtime.store.get_group(name)
    # The submission's own group: sealed once its three jobs are tracked.
    assert group is not None and (group.jobs, group.status) == (3, GroupStatus.SEALED)

    for job in jobs:
        await control.finish(job.arn or "", "Completed")
    await supervisor.run_pass()
    await supervisor.run_pass()  # the jobs of a group are cleaned at the pass after its compile

    compiled = await runtime.store.get_group(name)
    assert compiled is not None and compiled.status is GroupStatus.COMPLETED
    assert compiled.total_records == 1_200
    assert await keys(s3, "submitted/") == []


async def test_a_named_group_is_sealed_only_when_asked(
    runtime: Runtime, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    first = write_input(tmp_path / "first.jsonl", 100)
    last = write_input(tmp_path / "last.jsonl", 101)

    await submit(runtime, request(first, group="nightly"))
    open_group = await runtime.store.get_group("nightly")
    await submit(runtime, request(last, group="nightly", seal=True))
    sealed = await runtime.store.get_group("nightly")

    assert open_group is not None and open_group.status is GroupStatus.OPEN
    assert sealed is not None and (sealed.jobs, sealed.status) == (2, GroupStatus.SEALED)


async def test_assigned_record_ids_are_in_the_uploaded_input_and_the_stored_records(
    runtime: Runtime, supervisor: Supervisor, control: Any, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    records = make_records(100, prefix="q")
    for record in records[:3]:
        del record["recordId"]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))

    (job,) = await submit(runtime, request(source))
    assert job.arn is not None
    await control.finish(job.arn, "Completed")
    await supervisor.run_pass()

    ids = {
        arn_record[1].record_id
        for arn_record in await runtime.store.records_page(RecordScope(job=job.arn), limit=200)
    }
    assert {"R0000000001", "R0000000002", "R0000000003"} <= ids
    assert len(ids) == 100


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"role_arn": "admin"}, "not an IAM role ARN: 'admin'"),
        ({"folder": f"s3://{BUCKET}/no-slash"}, "a folder ends with '/'"),
        ({"folder": "http://x/"}, "--bucket"),
        ({"timeout_hours": 2}, "timeout of 2 hours: Bedrock takes 24 to 168"),
        ({"group": "bad group!"}, "not a group name"),
        ({"model_id": " "}, "no model id given"),
    ],
)
async def test_a_bad_request_is_refused_before_the_input_is_read(
    runtime: Runtime, tmp_path: Path, changes: dict[str, Any], problem: str
) -> None:
    base = request(tmp_path / "never-read.jsonl")
    fields = {**base.__dict__, **changes}

    with pytest.raises(InputError, match=problem):
        await submit(runtime, SubmitRequest(**fields))


async def test_a_large_input_goes_up_in_parts_and_a_failed_upload_leaves_no_parts(
    runtime: Runtime, s3: Any
) -> None:
    await ensure_bucket(s3, BUCKET)
    piece = b"x" * (3 * 1024 * 1024)

    async def pieces(count: int, fail: bool = False) -> AsyncIterator[bytes]:
        for _ in range(count):
            yield piece
        if fail:
            raise OSError("the disk went away")

    uri = S3Uri.parse(f"s3://{BUCKET}/parts/whole.jsonl")
    size = await runtime.s3.upload(uri, pieces(6))

    assert size == 6 * len(piece)
    head = await s3.head_object(Bucket=BUCKET, Key="parts/whole.jsonl")
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith("-2")  # a part as soon as 8 MB are waiting

    with pytest.raises(OSError, match="the disk went away"):
        await runtime.s3.upload(S3Uri.parse(f"s3://{BUCKET}/parts/broken.jsonl"), pieces(4, True))

    uploads = await s3.list_multipart_uploads(Bucket=BUCKET, Prefix="parts/")
    assert uploads.get("Uploads", []) == []
    assert await keys(s3, "parts/broken") == []


async def test_a_quota_of_two_jobs_queues_the_third_until_one_finishes(
    runtime: Runtime, control: Any, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    runtime.settings = runtime.settings.model_copy(
        update={"submit": SubmitSettings(max_concurrent_jobs_per_model=2)}
    )
    source = write_input(tmp_path / "in.jsonl", 300)

    jobs = await submit(runtime, request(source), SubmitLimits(max_records=100))

    assert [job.state for job in jobs] == ["submitted", "submitted", "queued"]
    assert jobs[2].arn is None
    first = await runtime.store.get_job(jobs[0].arn or "")
    waiting_group = await runtime.store.get_group(first.group_name or "" if first else "")
    assert waiting_group is not None and waiting_group.status is GroupStatus.OPEN
    waiting = await launch_submissions(runtime)
    assert waiting.queued and not waiting.tracked  # still no room

    await control.finish(jobs[0].arn or "", "Completed")
    launched = await launch_submissions(runtime)

    (arn,) = launched.tracked.values()
    stored = await runtime.store.get_job(arn)
    assert stored is not None and stored.job_name == jobs[2].name
    # The group waited, open, for its queued job; sealed once that one was tracked.
    group = await runtime.store.get_group(stored.group_name or "")
    assert group is not None and (group.jobs, group.status) == (3, GroupStatus.SEALED)


async def test_a_quota_exceeded_answer_queues_the_job(
    runtime: Runtime, control: Any, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    await control.configure(
        faults={
            "permanent_error": "ServiceQuotaExceededException",
            "operations": ["CreateModelInvocationJob"],
        }
    )
    source = write_input(tmp_path / "in.jsonl", 100)

    (job,) = await submit(runtime, request(source))

    assert job.state == "queued" and job.error is not None
    assert "ServiceQuotaExceeded" in job.error
    await control.configure(faults={"permanent_error": None})
    (arn,) = (await launch_submissions(runtime)).tracked.values()
    assert await runtime.store.get_job(arn) is not None


async def test_an_s3_input_is_checked_and_submitted_and_its_errors_name_its_uri(
    runtime: Runtime, s3: Any, tmp_path: Path
) -> None:
    good = write_input(tmp_path / "good.jsonl", 150)
    bad = write_input(tmp_path / "bad.jsonl", 150, line12={"recordId": "q", "modelInput": 1})
    await ensure_bucket(s3, BUCKET)
    await s3.put_object(Bucket=BUCKET, Key="incoming/good.jsonl", Body=good.read_bytes())
    await s3.put_object(Bucket=BUCKET, Key="incoming/bad.jsonl", Body=bad.read_bytes())

    (job,) = await submit(runtime, request(f"s3://{BUCKET}/incoming/good.jsonl"))

    assert (job.state, job.records) == ("submitted", 150)
    assert job.name.startswith("good-")
    with pytest.raises(InputError, match=rf"^s3://{BUCKET}/incoming/bad.jsonl line 12: modelInput"):
        await submit(runtime, request(f"s3://{BUCKET}/incoming/bad.jsonl"))
    with pytest.raises(InputError, match=rf"^s3://{BUCKET}/incoming/none.jsonl: no such object$"):
        await submit(runtime, request(f"s3://{BUCKET}/incoming/none.jsonl"))


async def test_submitting_from_python_is_one_call(
    endpoints: Endpoints, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    config = write_config(tmp_path, endpoints)
    source = write_input(tmp_path / "from-python.jsonl", 110)

    jobs = await batch_poller.submit(
        [source],
        model_id=NOVA,
        role_arn=ROLE_ARN,
        bucket=f"s3://{BUCKET}/python/",
        config=str(config),
    )

    assert [(job.state, job.records) for job in jobs] == [("submitted", 110)]
    assert query(tmp_path / "daemon.db", "SELECT count(*) FROM bedrock_batch_jobs") == [(1,)]


async def test_a_sealed_group_is_refused_before_anything_is_uploaded(
    runtime: Runtime, control: Any, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    await submit(runtime, request(write_input(tmp_path / "a.jsonl", 100), group="g", seal=True))
    created = (await control.calls()).get("CreateModelInvocationJob", 0)
    uploaded = await keys(s3, "submitted/")

    with pytest.raises(InputError, match=r"^group 'g' is sealed: it takes no more jobs$"):
        await submit(runtime, request(write_input(tmp_path / "b.jsonl", 100), group="g"))

    assert (await control.calls()).get("CreateModelInvocationJob", 0) == created
    assert await keys(s3, "submitted/") == uploaded


@pytest.mark.parametrize(
    ("folder", "problem"),
    [
        (f"s3://{BUCKET}/with space/", "Bedrock takes a bucket name"),
        (f"s3://{BUCKET}//double/", "Bedrock takes a bucket name"),
        ("s3://Upper_Case/x/", "Bedrock takes a bucket name"),
    ],
)
async def test_a_folder_bedrock_would_refuse_is_refused_before_the_upload(
    runtime: Runtime, s3: Any, tmp_path: Path, folder: str, problem: str
) -> None:
    await ensure_bucket(s3, BUCKET)

    with pytest.raises(InputError, match=problem):
        await submit(runtime, request(write_input(tmp_path / "in.jsonl", 100), folder=folder))

    assert await keys(s3, "") == []


async def test_the_same_file_twice_is_refused(runtime: Runtime, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", 100)

    with pytest.raises(InputError, match="is given twice: its records would run twice"):
        await submit(runtime, request(source, tmp_path / "." / "in.jsonl"))


async def test_bedrock_not_answering_leaves_the_jobs_queued_for_the_daemon(
    runtime: Runtime, supervisor: Supervisor, control: Any, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    await control.configure(
        faults={
            "permanent_error": "AccessDeniedException",
            "operations": ["ListModelInvocationJobs", "CreateModelInvocationJob"],
        }
    )

    (job,) = await submit(runtime, request(write_input(tmp_path / "in.jsonl", 100)))

    assert job.state == "queued" and job.error is not None and "AccessDenied" in job.error
    await control.configure(faults={"permanent_error": None})
    await supervisor.run_pass()
    (row,) = await runtime.store.submissions()
    assert row.state == "tracked" and row.arn is not None


async def test_parts_a_killed_upload_left_are_aborted_by_the_next(
    runtime: Runtime, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    source = write_input(tmp_path / "in.jsonl", 100)
    with pytest.raises(KeyboardInterrupt):
        original = runtime.s3.upload

        async def killed(uri: S3Uri, parts: AsyncIterator[bytes]) -> int:
            await s3.create_multipart_upload(Bucket=uri.bucket, Key=uri.key)
            raise KeyboardInterrupt  # the process dies with a part uploaded

        runtime.s3.upload = killed  # type: ignore[method-assign]
        try:
            await submit(runtime, request(source))
        finally:
            runtime.s3.upload = original  # type: ignore[method-assign]

    (job,) = await submit(runtime, request(source))

    assert job.state == "submitted"
    unfinished = await s3.list_multipart_uploads(Bucket=BUCKET)
    assert unfinished.get("Uploads", []) == []


async def test_a_queued_job_whose_group_was_sealed_meanwhile_is_still_tracked(
    runtime: Runtime, control: Any, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    runtime.settings = runtime.settings.model_copy(
        update={"submit": SubmitSettings(max_concurrent_jobs_per_model=1)}
    )
    (first,) = await submit(runtime, request(write_input(tmp_path / "a.jsonl", 100), group="g"))
    (second,) = await submit(runtime, request(write_input(tmp_path / "b.jsonl", 101), group="g"))
    assert (first.state, second.state) == ("submitted", "queued")
    await runtime.store.seal_group("g", runtime.clock.now())

    await control.finish(first.arn or "", "Completed")
    (arn,) = (await launch_submissions(runtime)).tracked.values()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.group_name is None  # made, so tracked, outside the group
    assert job.s3_folder is not None

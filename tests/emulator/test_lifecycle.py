"""Every path through Bedrock's ten statuses, driven by the emulator's clock or by hand."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import create_job, list_keys, make_records, put_input

HAPPY_PATH = ["Submitted", "Validating", "Scheduled", "InProgress", "Completed"]


@pytest.fixture
async def input_uri(endpoints: Any, s3: Any, control: Any) -> str:
    await control.freeze_clock()
    return await put_input(s3, "inputs/a.jsonl", make_records(6))


async def _status(bedrock: Any, arn: str) -> str:
    status: str = (await bedrock.get_model_invocation_job(jobIdentifier=arn))["status"]
    return status


async def test_advance_walks_a_job_through_every_status_to_completed(
    bedrock: Any, control: Any, input_uri: str
) -> None:
    arn = await create_job(bedrock, input_uri)

    seen = [await _status(bedrock, arn)]
    for _ in range(4):
        await control.advance(arn)
        seen.append(await _status(bedrock, arn))

    assert seen == HAPPY_PATH
    assert (await control.job(arn))["history"] == HAPPY_PATH


async def test_the_clock_moves_jobs_on_and_defaults_finish_within_ten_seconds(
    bedrock: Any, control: Any, input_uri: str
) -> None:
    arn = await create_job(bedrock, input_uri)

    await control.advance_clock(1.0)
    after_one_second = await _status(bedrock, arn)
    await control.advance_clock(9.0)
    after_ten_seconds = await bedrock.get_model_invocation_job(jobIdentifier=arn)

    assert after_one_second == "Validating"
    assert after_ten_seconds["status"] == "Completed"
    assert (after_ten_seconds["endTime"] - after_ten_seconds["submitTime"]).total_seconds() <= 10
    assert (await control.job(arn))["history"] == HAPPY_PATH


async def test_a_frozen_clock_keeps_jobs_where_they_are(
    bedrock: Any, control: Any, input_uri: str
) -> None:
    arn = await create_job(bedrock, input_uri)

    await bedrock.list_model_invocation_jobs()

    assert await _status(bedrock, arn) == "Submitted"


async def test_durations_are_settable(bedrock: Any, control: Any, input_uri: str) -> None:
    await control.configure(
        durations={"submitted": 0, "validating": 0, "scheduled": 0, "in_progress": 30}
    )
    arn = await create_job(bedrock, input_uri)

    await control.advance_clock(29)
    before = await _status(bedrock, arn)
    await control.advance_clock(1)

    assert before == "InProgress"
    assert await _status(bedrock, arn) == "Completed"


@pytest.mark.parametrize("outcome", ["Completed", "PartiallyCompleted", "Failed"])
async def test_the_outcome_tag_chooses_how_a_job_ends(
    bedrock: Any, control: Any, input_uri: str, outcome: str
) -> None:
    arn = await create_job(bedrock, input_uri, tags={"emulator:outcome": outcome})

    await control.advance_clock(10)
    job = await bedrock.get_model_invocation_job(jobIdentifier=arn)

    assert job["status"] == outcome
    assert (await control.job(arn))["history"] == [*HAPPY_PATH[:-1], outcome]


async def test_a_failed_job_carries_its_message_and_writes_no_output(
    bedrock: Any, control: Any, s3: Any, input_uri: str
) -> None:
    arn = await create_job(
        bedrock,
        input_uri,
        tags={"emulator:outcome": "Failed", "emulator:failure-message": "Model capacity lost"},
    )

    await control.advance_clock(10)
    job = await bedrock.get_model_invocation_job(jobIdentifier=arn)

    assert job["status"] == "Failed"
    assert job["message"] == "Model capacity lost"
    assert await list_keys(s3, "output/") == []


async def test_finish_fails_a_job_at_once_with_a_message(
    bedrock: Any, control: Any, input_uri: str
) -> None:
    arn = await create_job(bedrock, input_uri)

    await control.finish(arn, "Failed", "quota exceeded")
    job = await bedrock.get_model_invocation_job(jobIdentifier=arn)

    assert job["status"] == "Failed"
    assert job["message"] == "quota exceeded"
    assert "endTime" in job


async def test_a_job_that_stays_scheduled_past_its_timeout_expires(
    bedrock: Any, control: Any, input_uri: str
) -> None:
    arn = await create_job(
        bedrock, input_uri, tags={"emulator:outcome": "Expired"}, timeoutDurationInHours=48
    )

    await control.advance_clock(2)
    waiting = await _status(bedrock, arn)
    await control.advance_clock(47)
    still_waiting = await _status(bedrock, arn)
    await control.advance_clock(1)
    job = await bedrock.get_model_invocation_job(jobIdentifier=arn)

    assert (waiting, still_waiting) == ("Scheduled", "Scheduled")
    assert job["status"] == "Expired"
    assert "48 hours" in job["message"]


async def test_a_long_capacity_wait_expires_any_job(
    bedrock: Any, control: Any, input_uri: str
) -> None:
    await control.configure(durations={"scheduled": 100})
    arn = await create_job(bedrock, input_uri)

    await control.advance_clock(30)

    assert await _status(bedrock, arn) == "Expired"


async def test_an_input_line_that_is_not_json_fails_the_job_while_validating(
    bedrock: Any, control: Any, s3: Any, input_uri: str
) -> None:
    await s3.put_object(Bucket="batch-data", Key="inputs/bad.jsonl", Body=b'{"recordId": "a"\n')
    arn = await create_job(bedrock, "s3://batch-data/inputs/bad.jsonl")

    await control.advance_clock(10)
    job = await bedrock.get_model_invocation_job(jobIdentifier=arn)

    assert job["status"] == "Failed"
    assert "line 1" in job["message"]
    assert (await control.job(arn))["history"] == ["Submitted", "Validating", "Failed"]


async def test_stop_during_progress_ends_stopped_after_stopping(
    bedrock: Any, control: Any, input_uri: str
) -> None:
    arn = await create_job(bedrock, input_uri)
    await control.advance_clock(4.5)
    assert await _status(bedrock, arn) == "InProgress"

    await bedrock.stop_model_invocation_job(jobIdentifier=arn)
    await control.advance_clock(1)

    assert (await control.job(arn))["history"] == [*HAPPY_PATH[:-1], "Stopping", "Stopped"]


async def test_every_status_the_api_knows_is_reachable(
    bedrock: Any, control: Any, input_uri: str
) -> None:
    """The ten statuses of botocore's model, each seen on some job of the emulator."""
    seen: set[str] = set()
    for index, outcome in enumerate(["Completed", "PartiallyCompleted", "Failed", "Expired"]):
        arn = await create_job(
            bedrock, input_uri, name=f"j{index}", tags={"emulator:outcome": outcome}
        )
        await control.advance_clock(50)
        seen.update((await control.job(arn))["history"])
    stopped = await create_job(bedrock, input_uri, name="stopped")
    await bedrock.stop_model_invocation_job(jobIdentifier=stopped)
    await control.advance_clock(5)
    seen.update((await control.job(stopped))["history"])

    model = bedrock.meta.service_model.shape_for("ModelInvocationJobStatus")
    assert seen == set(model.enum)

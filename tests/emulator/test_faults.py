"""Injected faults reach botocore as the exceptions real Bedrock would raise."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.helpers import create_job, error_code, make_records, put_input


@pytest.fixture
async def arn(bedrock: Any, s3: Any, endpoints: Any) -> str:
    return await create_job(bedrock, await put_input(s3, "in/a.jsonl", make_records(2)))


async def test_a_throttling_rate_of_one_throttles_every_call(
    bedrock: Any, control: Any, arn: str
) -> None:
    await control.configure(faults={"throttle_rate": 1.0})

    for call in (
        bedrock.list_model_invocation_jobs(),
        bedrock.get_model_invocation_job(jobIdentifier=arn),
    ):
        with pytest.raises(bedrock.exceptions.ThrottlingException):
            await call

    calls = await control.calls()
    assert calls["ListModelInvocationJobs:ThrottlingException"] == 1
    assert calls["GetModelInvocationJob:ThrottlingException"] == 1


async def test_a_server_error_rate_gives_5xx_errors(bedrock: Any, control: Any, arn: str) -> None:
    await control.configure(faults={"server_error_rate": 1.0})
    codes = set()

    for _ in range(12):
        with pytest.raises(ClientError) as raised:
            await bedrock.get_model_invocation_job(jobIdentifier=arn)
        codes.add(error_code(raised.value))
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] >= 500

    assert codes == {"ServiceUnavailableException", "InternalServerException"}


async def test_a_partial_throttling_rate_throttles_about_that_share(
    bedrock: Any, control: Any, arn: str
) -> None:
    await control.configure(faults={"throttle_rate": 0.5}, seed=7)
    throttled = 0

    for _ in range(200):
        try:
            await bedrock.get_model_invocation_job(jobIdentifier=arn)
        except bedrock.exceptions.ThrottlingException:
            throttled += 1

    assert 60 < throttled < 140


async def test_botocore_retries_get_through_moderate_throttling(
    aws_session: Any, endpoints: Any, control: Any, arn: str
) -> None:
    await control.configure(faults={"throttle_rate": 0.3}, seed=3)
    retrying = Config(retries={"mode": "standard", "max_attempts": 10})

    async with aws_session.client(
        "bedrock", endpoint_url=endpoints.bedrock, config=retrying
    ) as client:
        jobs = [await client.get_model_invocation_job(jobIdentifier=arn) for _ in range(10)]

    assert {job["jobArn"] for job in jobs} == {arn}
    assert (await control.calls()).get("GetModelInvocationJob:ThrottlingException", 0) > 0


async def test_a_permanent_error_for_one_job_starts_at_the_given_call(
    bedrock: Any, s3: Any, control: Any, arn: str
) -> None:
    other = await create_job(bedrock, "s3://batch-data/in/a.jsonl", name="other")
    await control.set_job_faults(
        arn, {"permanent_error": "AccessDeniedException", "permanent_from_call": 3}
    )

    first = await bedrock.get_model_invocation_job(jobIdentifier=arn)
    second = await bedrock.get_model_invocation_job(jobIdentifier=arn)
    for _ in range(2):
        with pytest.raises(bedrock.exceptions.AccessDeniedException):
            await bedrock.get_model_invocation_job(jobIdentifier=arn)
    unaffected = await bedrock.get_model_invocation_job(jobIdentifier=other)

    assert first["jobArn"] == second["jobArn"] == arn
    assert unaffected["jobArn"] == other


async def test_a_global_resource_not_found_from_a_call_on(
    bedrock: Any, control: Any, arn: str
) -> None:
    await control.configure(
        faults={"permanent_error": "ResourceNotFoundException", "permanent_from_call": 2}
    )

    await bedrock.get_model_invocation_job(jobIdentifier=arn)
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        await bedrock.get_model_invocation_job(jobIdentifier=arn)

    await control.configure(faults={"permanent_error": None})
    assert (await bedrock.get_model_invocation_job(jobIdentifier=arn))["jobArn"] == arn


async def test_added_latency_delays_each_call(bedrock: Any, control: Any, arn: str) -> None:
    await control.configure(faults={"latency_ms": 150})

    started = time.monotonic()
    await bedrock.get_model_invocation_job(jobIdentifier=arn)
    elapsed = time.monotonic() - started

    # A lower bound only: the emulator sleeps at least this long before it answers.
    assert elapsed >= 0.15


async def test_clearing_job_faults_restores_the_job(bedrock: Any, control: Any, arn: str) -> None:
    await control.set_job_faults(arn, {"throttle_rate": 1.0})
    with pytest.raises(bedrock.exceptions.ThrottlingException):
        await bedrock.get_model_invocation_job(jobIdentifier=arn)

    await control.set_job_faults(arn, None)

    assert (await bedrock.get_model_invocation_job(jobIdentifier=arn))["jobArn"] == arn

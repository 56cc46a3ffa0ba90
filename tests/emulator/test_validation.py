"""CreateModelInvocationJob refuses what Bedrock refuses, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import BUCKET, NOVA, ROLE_ARN, make_records, put_input


def _request(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "jobName": "valid-name",
        "roleArn": ROLE_ARN,
        "modelId": NOVA,
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/in/a.jsonl"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}},
    }
    for key, value in changes.items():
        if value is None:
            request.pop(key)
        else:
            request[key] = value
    return request


def _input(uri: str) -> dict[str, Any]:
    return {"s3InputDataConfig": {"s3Uri": uri}}


def _output(uri: str) -> dict[str, Any]:
    return {"s3OutputDataConfig": {"s3Uri": uri}}


BAD_REQUESTS = {
    "name with a space": (_request(jobName="bad name"), "jobName"),
    "name too long": (_request(jobName="a" * 64), "jobName"),
    "name starting with a dash": (_request(jobName="-name"), "jobName"),
    "no name": (_request(jobName=None), "jobName"),
    "no role": (_request(roleArn=None), "roleArn"),
    "role not an IAM role": (_request(roleArn="arn:aws:s3:::bucket"), "roleArn"),
    "no model": (_request(modelId=None), "modelId"),
    "no input config": (_request(inputDataConfig=None), "inputDataConfig"),
    "input not s3": (
        _request(inputDataConfig=_input("https://x/a.jsonl")),
        "s3InputDataConfig.s3Uri",
    ),
    "input missing": (
        _request(inputDataConfig=_input(f"s3://{BUCKET}/nothing.jsonl")),
        "s3InputDataConfig.s3Uri",
    ),
    "input bucket missing": (
        _request(inputDataConfig=_input("s3://no-such-bucket/a.jsonl")),
        "s3InputDataConfig.s3Uri",
    ),
    "empty input prefix": (
        _request(inputDataConfig=_input(f"s3://{BUCKET}/empty/")),
        "s3InputDataConfig.s3Uri",
    ),
    "output not s3": (_request(outputDataConfig=_output("/tmp/out")), "s3OutputDataConfig.s3Uri"),
    "output bucket missing": (
        _request(outputDataConfig=_output("s3://no-such-bucket/out/")),
        "s3OutputDataConfig.s3Uri",
    ),
    "timeout too short": (_request(timeoutDurationInHours=23), "timeoutDurationInHours"),
    "timeout too long": (_request(timeoutDurationInHours=169), "timeoutDurationInHours"),
    "bad idempotency token": (
        _request(clientRequestToken="no spaces allowed"),
        "clientRequestToken",
    ),
    "unknown emulator outcome": (
        _request(tags=[{"key": "emulator:outcome", "value": "Maybe"}]),
        "emulator:outcome",
    ),
    "error rate out of range": (
        _request(tags=[{"key": "emulator:error-rate", "value": "2"}]),
        "emulator:error-rate",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
async def test_a_bad_create_request_is_a_validation_error_naming_the_field(
    raw_bedrock: Any, s3: Any, endpoints: Any, case: str
) -> None:
    await put_input(s3, "in/a.jsonl", make_records(2))
    request, field = BAD_REQUESTS[case]

    with pytest.raises(raw_bedrock.exceptions.ValidationException) as raised:
        await raw_bedrock.create_model_invocation_job(**request)

    assert field in str(raised.value)
    listed = await raw_bedrock.list_model_invocation_jobs()
    assert listed["invocationJobSummaries"] == []


async def test_an_input_prefix_with_jsonl_files_is_accepted(
    raw_bedrock: Any, s3: Any, endpoints: Any
) -> None:
    await put_input(s3, "in/part-1.jsonl", make_records(2))

    response = await raw_bedrock.create_model_invocation_job(
        **_request(inputDataConfig=_input(f"s3://{BUCKET}/in/"))
    )

    job = await raw_bedrock.get_model_invocation_job(jobIdentifier=response["jobArn"])
    assert job["status"] == "Submitted"
    assert job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"] == f"s3://{BUCKET}/in/"

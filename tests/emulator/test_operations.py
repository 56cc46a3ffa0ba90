"""The four Bedrock operations through a real aioboto3 client."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from batch_poller.domain import job_id_from_arn
from tests.helpers import (
    BUCKET,
    NOVA,
    ROLE_ARN,
    create_job,
    error_code,
    make_records,
    put_input,
    read_object,
)


@pytest.fixture
async def input_uri(endpoints: Any, s3: Any) -> str:
    return await put_input(s3, "inputs/a.jsonl", make_records(4))


async def test_create_returns_an_arn_that_get_answers_by_arn_and_by_id(
    bedrock: Any, input_uri: str
) -> None:
    arn = await create_job(bedrock, input_uri, name="nightly-1")

    by_arn = await bedrock.get_model_invocation_job(jobIdentifier=arn)
    by_id = await bedrock.get_model_invocation_job(jobIdentifier=job_id_from_arn(arn))

    assert arn.startswith("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/")
    for job in (by_arn, by_id):
        assert job["jobArn"] == arn
        assert job["jobName"] == "nightly-1"
        assert job["modelId"] == NOVA
        assert job["roleArn"] == ROLE_ARN
        assert job["status"] == "Submitted"
        assert isinstance(job["submitTime"], datetime)
        assert job["submitTime"].tzinfo is not None
        assert job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"] == input_uri
        assert job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"] == f"s3://{BUCKET}/output/"
        assert job["timeoutDurationInHours"] == 24


async def test_list_returns_summaries_with_status(bedrock: Any, input_uri: str) -> None:
    arns = [await create_job(bedrock, input_uri, name=f"job-{i}") for i in range(3)]

    listed = await bedrock.list_model_invocation_jobs()

    summaries = listed["invocationJobSummaries"]
    assert [s["jobArn"] for s in summaries] == list(reversed(arns))  # newest first by default
    assert {s["status"] for s in summaries} == {"Submitted"}
    assert "nextToken" not in listed


async def test_stop_moves_a_running_job_to_stopping_then_stopped(
    bedrock: Any, control: Any, input_uri: str
) -> None:
    await control.freeze_clock()
    arn = await create_job(bedrock, input_uri)

    await bedrock.stop_model_invocation_job(jobIdentifier=arn)
    stopping = await bedrock.get_model_invocation_job(jobIdentifier=arn)
    await control.advance(arn)
    stopped = await bedrock.get_model_invocation_job(jobIdentifier=arn)

    assert stopping["status"] == "Stopping"
    assert stopped["status"] == "Stopped"
    assert stopped["endTime"] >= stopped["submitTime"]


async def test_stopping_a_finished_job_is_a_conflict(
    bedrock: Any, control: Any, input_uri: str
) -> None:
    arn = await create_job(bedrock, input_uri)
    await control.finish(arn, "Completed")

    with pytest.raises(ClientError) as raised:
        await bedrock.stop_model_invocation_job(jobIdentifier=arn)

    assert error_code(raised.value) == "ConflictException"
    assert isinstance(raised.value, bedrock.exceptions.ConflictException)
    # The status botocore's model declares for it.
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_the_same_client_request_token_returns_the_same_job(
    bedrock: Any, input_uri: str
) -> None:
    first = await create_job(bedrock, input_uri, clientRequestToken="token-1")
    again = await create_job(bedrock, input_uri, clientRequestToken="token-1")
    listed = await bedrock.list_model_invocation_jobs()

    assert first == again
    assert len(listed["invocationJobSummaries"]) == 1
    job = await bedrock.get_model_invocation_job(jobIdentifier=first)
    assert job["clientRequestToken"] == "token-1"


async def test_a_reused_token_with_other_parameters_is_a_conflict(
    bedrock: Any, input_uri: str
) -> None:
    await create_job(bedrock, input_uri, name="first", clientRequestToken="token-2")

    with pytest.raises(bedrock.exceptions.ConflictException):
        await create_job(bedrock, input_uri, name="second", clientRequestToken="token-2")


async def test_a_job_name_in_use_is_a_conflict(bedrock: Any, input_uri: str) -> None:
    await create_job(bedrock, input_uri, name="taken")

    with pytest.raises(bedrock.exceptions.ConflictException):
        await create_job(bedrock, input_uri, name="taken")


@pytest.mark.parametrize(
    "identifier",
    ["abcdefabcdef", "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefabcdef"],
)
async def test_an_unknown_job_is_resource_not_found(
    bedrock: Any, endpoints: Any, identifier: str
) -> None:
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException) as raised:
        await bedrock.get_model_invocation_job(jobIdentifier=identifier)

    assert "abcdefabcdef" in str(raised.value)


async def test_an_arn_of_another_account_is_not_found(bedrock: Any, input_uri: str) -> None:
    arn = await create_job(bedrock, input_uri)
    other = arn.replace("123456789012", "210987654321")

    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        await bedrock.get_model_invocation_job(jobIdentifier=other)


async def test_a_malformed_identifier_is_a_validation_error(
    raw_bedrock: Any, endpoints: Any
) -> None:
    with pytest.raises(raw_bedrock.exceptions.ValidationException) as raised:
        await raw_bedrock.get_model_invocation_job(jobIdentifier="not-a-job")

    assert "jobIdentifier" in str(raised.value)


async def test_a_job_s_tags_are_listed_by_its_arn(bedrock: Any, input_uri: str) -> None:
    arn = await create_job(bedrock, input_uri, tags={"team": "search", "cost-centre": "42"})

    listed = await bedrock.list_tags_for_resource(resourceARN=arn)

    assert sorted((t["key"], t["value"]) for t in listed["tags"]) == [
        ("cost-centre", "42"),
        ("team", "search"),
    ]
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        await bedrock.list_tags_for_resource(resourceARN=arn[:-12] + "abcdefabcdef")
    with pytest.raises(bedrock.exceptions.ValidationException) as raised:
        await bedrock.list_tags_for_resource(resourceARN="arn:aws:s3:::not-a-job-at-all")
    assert "resourceARN" in str(raised.value)


async def test_stop_of_an_unknown_job_is_resource_not_found(bedrock: Any, endpoints: Any) -> None:
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        await bedrock.stop_model_invocation_job(jobIdentifier="abcdefabcdef")


async def _raw(endpoints: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """The emulator's HTTP as a client whose botocore model is newer than the one installed
    (fields this botocore would drop or refuse)."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, endpoints.bedrock + path, json=body) as response,
    ):
        return response.status, await response.json()


def _create_body(input_uri: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "jobName": name,
        "roleArn": ROLE_ARN,
        "modelId": NOVA,
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": input_uri}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}},
        **extra,
    }


async def test_a_job_says_its_expiry_invocation_type_and_vpc_config(
    bedrock: Any, endpoints: Any, input_uri: str
) -> None:
    vpc = {"subnetIds": ["subnet-0a1b"], "securityGroupIds": ["sg-0c2d"]}
    body = _create_body(
        input_uri,
        "in-a-vpc",
        modelInvocationType="Converse",
        vpcConfig=vpc,
        timeoutDurationInHours=48,
    )
    code, created = await _raw(endpoints, "POST", "/model-invocation-job", body)
    assert code == 200
    job_id = created["jobArn"].rsplit("/", 1)[1]
    _, got = await _raw(endpoints, "GET", f"/model-invocation-job/{job_id}")
    _, listed = await _raw(endpoints, "GET", "/model-invocation-jobs")
    plain = await create_job(bedrock, input_uri, name="plain")
    described = await bedrock.get_model_invocation_job(jobIdentifier=plain)

    assert (got["modelInvocationType"], got["vpcConfig"]) == ("Converse", vpc)
    submitted = datetime.fromisoformat(got["submitTime"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(got["jobExpirationTime"].replace("Z", "+00:00"))
    assert (expires - submitted).total_seconds() == 48 * 3600
    [summary] = [j for j in listed["invocationJobSummaries"] if j["jobName"] == "in-a-vpc"]
    assert summary["vpcConfig"] == vpc and summary["modelInvocationType"] == "Converse"
    # botocore reads what its model knows of it.
    assert described["jobExpirationTime"] > described["submitTime"]
    assert "vpcConfig" not in described


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"modelInvocationType": "Chat"}, "modelInvocationType: 'Chat'"),
        ({"vpcConfig": {"subnetIds": []}}, "vpcConfig: needs subnetIds and securityGroupIds"),
        (
            {"vpcConfig": {"subnetIds": [], "securityGroupIds": ["sg"]}},
            "vpcConfig.subnetIds: a list of 1 to 16 ids",
        ),
        (
            {"vpcConfig": {"subnetIds": ["s"], "securityGroupIds": [1]}},
            "vpcConfig.securityGroupIds: every id is a string",
        ),
    ],
)
async def test_a_bad_invocation_type_or_vpc_config_is_a_validation_error(
    endpoints: Any, input_uri: str, extra: dict[str, Any], words: str
) -> None:
    code, answer = await _raw(
        endpoints, "POST", "/model-invocation-job", _create_body(input_uri, "refused", **extra)
    )
    assert code == 400 and words in answer["message"]


async def test_record_counts_grow_while_a_job_runs_and_end_as_its_manifest(
    endpoints: Any, s3: Any, control: Any
) -> None:
    await control.freeze_clock()
    uri = await put_input(s3, "counted/input.jsonl", make_records(20))
    body = _create_body(uri, "counted", tags=[{"key": "emulator:error-rate", "value": "0.25"}])
    _, created = await _raw(endpoints, "POST", "/model-invocation-job", body)
    job_id = created["jobArn"].rsplit("/", 1)[1]

    async def counts() -> tuple[str, Any]:
        _, job = await _raw(endpoints, "GET", f"/model-invocation-job/{job_id}")
        fields = ("totalRecordCount", "processedRecordCount", "successRecordCount")
        return job["status"], tuple(job.get(name) for name in (*fields, "errorRecordCount"))

    seen = [await counts()]
    for _ in range(9):  # submitted 1 s, validating 1 s, scheduled 2 s, in progress 4 s
        await control.advance_clock(1)
        seen.append(await counts())

    assert seen[0] == ("Submitted", (None, None, None, None))
    running = [c for status, c in seen if status == "InProgress"]
    processed = [c[1] for c in running]
    assert processed == sorted(processed) and processed[0] < processed[-1] < 20
    assert all(total == 20 and ok + error == done for total, done, ok, error in running)
    status, final = seen[-1]
    manifest = await read_object(s3, f"out/{job_id}/manifest.json.out")
    written = json.loads(manifest)
    assert status == "Completed"
    assert final == (
        written["totalRecordCount"],
        written["processedRecordCount"],
        written["successRecordCount"],
        written["errorRecordCount"],
    )
    assert final[3] == 5

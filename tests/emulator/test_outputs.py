"""What a finished job leaves in S3: one .out per input file and a manifest that agrees."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from batch_poller.domain import job_id_from_arn
from batch_poller.emulator.families import count_tokens, prompt_text
from tests.helpers import (
    BUCKET,
    ROLE_ARN,
    create_job,
    list_keys,
    make_records,
    nova_input,
    put_input,
    read_object,
)


async def _finish_and_read(
    bedrock: Any, control: Any, s3: Any, arn: str, status: str = "Completed"
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    await control.finish(arn, status)
    folder = f"output/{job_id_from_arn(arn)}/"
    files: dict[str, list[dict[str, Any]]] = {}
    manifest: dict[str, int] = {}
    for key in await list_keys(s3, folder):
        body = await read_object(s3, key)
        if key.endswith("manifest.json.out"):
            manifest = json.loads(body)
        else:
            files[key.removeprefix(folder)] = [json.loads(line) for line in body.splitlines()]
    return files, manifest


def _usage(output: dict[str, Any]) -> tuple[int, int]:
    """Input and output tokens of a modelOutput, whatever its family."""
    if "usage" in output and "inputTokens" in output["usage"]:
        return output["usage"]["inputTokens"], output["usage"]["outputTokens"]
    if "usage" in output:
        return output["usage"]["input_tokens"], output["usage"]["output_tokens"]
    if "inputTextTokenCount" in output:
        return output["inputTextTokenCount"], 0
    return output["prompt_token_count"], output["generation_token_count"]


def _claude_input(text: str) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    }


FAMILIES = {
    "amazon.nova-pro-v1:0": (nova_input, lambda o: o["output"]["message"]["content"][0]["text"]),
    "anthropic.claude-3-haiku-20240307-v1:0": (_claude_input, lambda o: o["content"][0]["text"]),
    "amazon.titan-embed-text-v2:0": (lambda t: {"inputText": t}, lambda o: o["embedding"]),
    "meta.llama3-1-8b-instruct-v1:0": (lambda t: {"prompt": t}, lambda o: o["generation"]),
    "mistral.mistral-large-2407-v1:0": (
        lambda t: {"messages": [{"role": "user", "content": [{"text": t}]}]},
        lambda o: o["output"]["message"]["content"][0]["text"],
    ),
}


@pytest.mark.parametrize("model_id", list(FAMILIES))
async def test_each_family_writes_its_own_shape_and_a_manifest_that_sums_it(
    bedrock: Any, control: Any, s3: Any, endpoints: Any, model_id: str
) -> None:
    make_input, read_answer = FAMILIES[model_id]
    records = make_records(10, model_input=make_input)
    uri = await put_input(s3, "in/records.jsonl", records)
    arn = await create_job(bedrock, uri, model_id=model_id)

    files, manifest = await _finish_and_read(bedrock, control, s3, arn)

    lines = files["records.jsonl.out"]
    assert sorted(line["recordId"] for line in lines) == [r["recordId"] for r in records]
    inputs = {r["recordId"]: r["modelInput"] for r in records}
    for line in lines:
        assert line["modelInput"] == inputs[line["recordId"]]
        assert read_answer(line["modelOutput"])
        input_tokens, _ = _usage(line["modelOutput"])
        assert input_tokens == count_tokens(prompt_text(line["modelInput"]))
    assert manifest == {
        "totalRecordCount": 10,
        "processedRecordCount": 10,
        "successRecordCount": 10,
        "errorRecordCount": 0,
        "inputTokenCount": sum(_usage(line["modelOutput"])[0] for line in lines),
        "outputTokenCount": sum(_usage(line["modelOutput"])[1] for line in lines),
    }


async def test_converse_invocation_type_answers_in_the_converse_shape(
    bedrock: Any, control: Any, s3: Any, endpoints: Any
) -> None:
    uri = await put_input(s3, "in/records.jsonl", make_records(2))
    arn = await create_job(bedrock, uri, tags={"emulator:invocation-type": "Converse"})

    files, _ = await _finish_and_read(bedrock, control, s3, arn)

    output = files["records.jsonl.out"][0]["modelOutput"]
    assert set(output) == {"output", "stopReason", "usage", "metrics"}
    assert output["metrics"]["latencyMs"] > 0


async def test_the_requests_own_invocation_type_gives_the_converse_shape(
    bedrock: Any, control: Any, s3: Any, endpoints: Any
) -> None:
    """modelInvocationType in the request, as a client with a newer model sends it."""
    uri = await put_input(s3, "in/records.jsonl", make_records(2))
    body = {
        "jobName": "conversing",
        "roleArn": ROLE_ARN,
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "modelInvocationType": "Converse",
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": uri}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/output/"}},
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{endpoints.bedrock}/model-invocation-job", json=body) as response,
    ):
        assert response.status == 200
        arn = (await response.json())["jobArn"]

    files, _ = await _finish_and_read(bedrock, control, s3, arn)

    # A Claude model, in the Converse shape rather than Claude's own.
    output = files["records.jsonl.out"][0]["modelOutput"]
    assert set(output) == {"output", "stopReason", "usage", "metrics"}
    assert output["output"]["message"]["content"][0]["text"]


async def test_a_share_of_records_fail_with_error_lines(
    bedrock: Any, control: Any, s3: Any, endpoints: Any
) -> None:
    uri = await put_input(s3, "in/records.jsonl", make_records(20))
    arn = await create_job(bedrock, uri, tags={"emulator:error-rate": "0.25"})

    files, manifest = await _finish_and_read(bedrock, control, s3, arn)

    errors = [line for line in files["records.jsonl.out"] if "error" in line]
    assert len(errors) == 5
    assert all("modelOutput" not in line and line["modelInput"] for line in errors)
    assert {str(e["error"]["errorCode"]) for e in errors} == {"400"}
    assert {type(e["error"]["errorCode"]) for e in errors} == {int, str}
    assert all(e["error"]["errorMessage"] for e in errors)
    assert manifest["errorRecordCount"] == 5
    assert manifest["successRecordCount"] == 15
    assert manifest["processedRecordCount"] == 20


async def test_partially_completed_leaves_records_out_and_says_so(
    bedrock: Any, control: Any, s3: Any, endpoints: Any
) -> None:
    records = make_records(20)
    uri = await put_input(s3, "in/records.jsonl", records)
    arn = await create_job(bedrock, uri, tags={"emulator:unprocessed-rate": "0.3"})

    files, manifest = await _finish_and_read(bedrock, control, s3, arn, "PartiallyCompleted")

    written = {line["recordId"] for line in files["records.jsonl.out"]}
    assert len(written) == 14
    assert written < {r["recordId"] for r in records}
    assert manifest["totalRecordCount"] == 20
    assert manifest["processedRecordCount"] == 14
    assert manifest["successRecordCount"] + manifest["errorRecordCount"] == 14


async def test_an_input_prefix_gives_one_output_file_per_jsonl_file(
    bedrock: Any, control: Any, s3: Any, endpoints: Any
) -> None:
    await put_input(s3, "in/part-1.jsonl", make_records(3, prefix="a"))
    await put_input(s3, "in/part-2.jsonl", make_records(4, prefix="b"))
    await s3.put_object(Bucket="batch-data", Key="in/notes.txt", Body=b"not input")
    arn = await create_job(bedrock, "s3://batch-data/in/")

    files, manifest = await _finish_and_read(bedrock, control, s3, arn)

    assert set(files) == {"part-1.jsonl.out", "part-2.jsonl.out"}
    assert len(files["part-1.jsonl.out"]) == 3
    assert len(files["part-2.jsonl.out"]) == 4
    assert manifest["totalRecordCount"] == 7


async def test_output_order_is_not_input_order(
    bedrock: Any, control: Any, s3: Any, endpoints: Any
) -> None:
    records = make_records(30)
    uri = await put_input(s3, "in/records.jsonl", records)
    arn = await create_job(bedrock, uri)

    files, _ = await _finish_and_read(bedrock, control, s3, arn)

    written = [line["recordId"] for line in files["records.jsonl.out"]]
    assert written != [r["recordId"] for r in records]
    assert sorted(written) == [r["recordId"] for r in records]


async def test_a_record_without_an_id_gets_one(
    bedrock: Any, control: Any, s3: Any, endpoints: Any
) -> None:
    records = [{"modelInput": nova_input("no id here")}, *make_records(1)]
    uri = await put_input(s3, "in/records.jsonl", records)
    arn = await create_job(bedrock, uri)

    files, _ = await _finish_and_read(bedrock, control, s3, arn)

    ids = {line["recordId"] for line in files["records.jsonl.out"]}
    assert len(ids) == 2
    assert "rec00000" in ids
    assert all(ids)


async def test_completion_by_the_clock_writes_output_before_the_status_shows(
    bedrock: Any, control: Any, s3: Any, endpoints: Any
) -> None:
    await control.freeze_clock()
    uri = await put_input(s3, "in/records.jsonl", make_records(5))
    arn = await create_job(bedrock, uri)

    await control.advance_clock(8)
    job = await bedrock.get_model_invocation_job(jobIdentifier=arn)
    keys = await list_keys(s3, f"output/{job_id_from_arn(arn)}/")

    assert job["status"] == "Completed"
    assert [k.rsplit("/", 1)[-1] for k in keys] == ["manifest.json.out", "records.jsonl.out"]

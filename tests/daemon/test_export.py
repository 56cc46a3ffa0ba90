"""`batch-poller export`: a job's stored records as JSON lines or CSV, one per record, with the
text of the model's answer; written from the store, read back here with json and csv."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest

from batch_poller.export import output_text
from tests.daemon.test_cli import cli
from tests.helpers import BUCKET, create_job, make_records, put_input, read_object
from tests.processes import write_config


@pytest.fixture
def config(tmp_path: Path, endpoints: Any) -> Path:
    return write_config(tmp_path, endpoints, cleanup={"enabled": False})


async def _stored_job(capsys: Any, config: Path, bedrock: Any, s3: Any, control: Any) -> str:
    uri = await put_input(s3, "export/input.jsonl", make_records(30))
    arn = await create_job(
        bedrock, uri, output_uri=f"s3://{BUCKET}/out/", tags={"emulator:error-rate": "0.2"}
    )
    assert (await cli(capsys, config, "track", arn))[0] == 0
    await control.finish(arn, "Completed")
    assert (await cli(capsys, config, "process-completed"))[0] == 0
    return str(arn)


async def test_export_writes_every_record_once_with_its_answer(
    capsys: Any, config: Path, tmp_path: Path, bedrock: Any, s3: Any, control: Any
) -> None:
    arn = await _stored_job(capsys, config, bedrock, s3, control)
    job_id = arn.rsplit("/", 1)[1]
    written = await read_object(s3, f"out/{job_id}/input.jsonl.out")
    truth = {line["recordId"]: line for line in map(json.loads, written.splitlines())}

    code, out, _ = await cli(capsys, config, "export", arn)
    as_csv = tmp_path / "records.csv"
    csv_code, _, csv_err = await cli(
        capsys, config, "export", job_id, "--format", "csv", "-o", str(as_csv)
    )
    errors_code, errors_out, _ = await cli(capsys, config, "export", arn, "--errors-only")

    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == len(truth) == 30
    assert [line["record_id"] for line in lines] == sorted(truth)
    for line in lines:
        source = truth[line["record_id"]]
        if "error" in source:
            assert line["outcome"] == "error" and line["output_text"] is None
            assert line["error_code"] == str(source["error"]["errorCode"])
        else:
            answer = source["modelOutput"]["output"]["message"]["content"][0]["text"]
            assert line["outcome"] == "ok" and line["output_text"] == answer
            assert line["model_output"] == source["modelOutput"]
            assert line["input_tokens"] == source["modelOutput"]["usage"]["inputTokens"]
    with open(as_csv, newline="") as handle:  # noqa: ASYNC230 - a small file, read once
        rows = list(csv.DictReader(handle))
    assert csv_code == 0 and f"30 records written to {as_csv}" in csv_err
    assert [row["record_id"] for row in rows] == [line["record_id"] for line in lines]
    assert [row["output_text"] for row in rows] == [line["output_text"] or "" for line in lines]
    errors = [json.loads(line) for line in errors_out.splitlines()]
    assert errors_code == 0 and len(errors) == 6
    assert {line["outcome"] for line in errors} == {"error"}


async def test_export_of_an_unknown_job_says_so_and_writes_no_file(
    capsys: Any, config: Path, tmp_path: Path, bedrock: Any, s3: Any, control: Any
) -> None:
    await _stored_job(capsys, config, bedrock, s3, control)
    target = tmp_path / "none.jsonl"
    code, out, err = await cli(capsys, config, "export", "abcdefabcdef", "-o", str(target))
    assert code == 1 and out == "" and "no tracked job 'abcdefabcdef'" in err
    assert sorted(os.listdir(tmp_path)) == ["config.toml", "daemon.db"]  # no export, no partial


@pytest.mark.parametrize(
    ("output", "text"),
    [
        ({"output": {"message": {"content": [{"text": "a"}, {"text": "b"}]}}}, "ab"),
        ({"content": [{"type": "text", "text": "claude"}]}, "claude"),
        ({"generation": "llama"}, "llama"),
        ({"results": [{"outputText": "titan"}]}, "titan"),
        ({"outputs": [{"text": "mistral"}]}, "mistral"),
        ({"embedding": [0.1, 0.2]}, None),
        ({"output": "not a message"}, None),
        ([1, 2], None),
    ],
)
def test_the_answer_text_of_each_model_family(output: Any, text: str | None) -> None:
    assert output_text(json.dumps(output)) == text


def test_output_that_is_not_json_has_no_text() -> None:
    assert output_text("{cut") is None
    assert output_text(None) is None

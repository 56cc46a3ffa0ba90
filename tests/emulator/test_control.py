"""The control API refuses bad requests with a message and a 4xx status."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.helpers import create_job, make_records, put_input


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("PUT", "/settings", {"durations": {"submitted": -1}}, 400, "durations.submitted"),
        ("PUT", "/settings", {"unknown": 1}, 400, "unknown"),
        ("PUT", "/settings", {"faults": {"throttle_rate": 2}}, 400, "faults.throttle_rate"),
        ("POST", "/clock", {"advance_seconds": -5}, 400, "advance_seconds"),
        ("POST", "/clock", {"rewind": 5}, 400, "clock"),
        ("POST", "/jobs/abcdefabcdef/advance", None, 404, "abcdefabcdef"),
        ("POST", "/jobs/BAD/advance", None, 400, "jobIdentifier"),
    ],
)
async def test_bad_control_requests(
    endpoints: Any, method: str, path: str, body: Any, status: int, words: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{endpoints.bedrock}/_emulator{path}", json=body) as response,
    ):
        text = await response.text()

    assert response.status == status
    assert words in text


async def test_finish_refuses_a_status_that_is_not_final(
    bedrock: Any, s3: Any, endpoints: Any
) -> None:
    arn = await create_job(bedrock, await put_input(s3, "in/a.jsonl", make_records(1)))
    job_id = arn.rsplit("/", 1)[-1]

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{endpoints.bedrock}/_emulator/jobs/{job_id}/finish", json={"status": "InProgress"}
        ) as response,
    ):
        assert response.status == 400
        assert "not a final status" in await response.text()


async def test_reset_forgets_every_job(bedrock: Any, s3: Any, control: Any) -> None:
    await create_job(bedrock, await put_input(s3, "in/a.jsonl", make_records(1)))

    await control.reset()

    assert (await bedrock.list_model_invocation_jobs())["invocationJobSummaries"] == []
    assert await control.calls() == {"ListModelInvocationJobs": 1}

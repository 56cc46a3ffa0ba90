"""schemathesis against the running admin API, from its OpenAPI document: requests it
generates, valid and invalid (its coverage and fuzzing phases), never get a 5xx, and every
answer has a documented status, content type, headers and schema. Bounded to a few examples an
operation so it runs in seconds."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from batch_poller.http.openapi import openapi_document
from tests.http.conftest import BEARER, Admin

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES_PER_OPERATION = 25
# Bounds a hang only: a run takes a few seconds.
HANG = 120.0


async def run_schemathesis(admin: Admin, workdir: Path, *headers: str) -> tuple[int, str]:
    """The schemathesis command against the daemon's own document, every check on; the daemon
    keeps serving on this event loop while the child process runs. It keeps its state in
    workdir."""
    options = [f"--header={header}" for header in headers]
    process = await asyncio.create_subprocess_exec(
        SCHEMATHESIS,
        f"--config-file={CONFIG}",
        "run",
        f"{admin.server.url}/api/openapi.json",
        "--checks=all",
        "--phases=examples,coverage,fuzzing",
        f"--max-examples={EXAMPLES_PER_OPERATION}",
        "--generation-database=none",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=workdir,
    )
    output, _ = await asyncio.wait_for(process.communicate(), HANG)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.fixture
async def with_a_job(admin: Admin, control: Any, submit: Any) -> str:
    """A stored, completed job, so lists and documents hold real rows."""
    arn: str = await submit(3)
    # In a sealed group too, so the group's documents hold a compiled group.
    body = {"batch_job_arn": arn, "group": "fuzzed", "seal": True}
    status, _ = await admin.call("POST", "/api/batch/jobs", auth=BEARER, json=body)
    assert status == 200
    await control.finish(arn, "Completed")
    status, _ = await admin.call("POST", "/api/batch/process-completed", auth=BEARER)
    assert status == 200
    return arn


async def test_generated_requests_get_documented_answers(
    admin: Admin, with_a_job: str, tmp_path: Path
) -> None:
    code, output = await run_schemathesis(admin, tmp_path, f"Authorization: {BEARER}")

    assert code == 0, output
    assert "23 selected / 23 total" in output, output


async def test_without_the_token_answers_are_documented_too(admin: Admin, tmp_path: Path) -> None:
    code, output = await run_schemathesis(admin, tmp_path)

    assert code == 0, output


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _validate(url: str, path: str, method: str, **parameters: Any) -> int:
    schema = schemathesis.openapi.from_dict(openapi_document())
    case = schema[path][method].Case(**parameters)
    response = case.call_and_validate(
        base_url=url, headers={"Authorization": BEARER}, checks=CHECKS
    )
    return int(response.status_code)


async def test_a_real_job_conforms_to_the_documented_schemas(admin: Admin, with_a_job: str) -> None:
    url = admin.server.url
    job = {"job": with_a_job}
    group = {"group": "fuzzed"}
    _, page = await admin.call("GET", f"/api/batch/jobs/{with_a_job}/records")
    record = {"record_id": page["records"][0]["record_id"]}

    # A blocking client, so it runs in a thread while this loop serves it.
    statuses = await asyncio.to_thread(
        lambda: [
            _validate(url, "/api/batch/jobs", "GET"),
            _validate(url, "/api/batch/jobs/{job}", "GET", path_parameters=job),
            _validate(url, "/api/batch/jobs/{job}/cleanup", "POST", path_parameters=job, body={}),
            _validate(url, "/api/batch/jobs", "POST", body={"batch_job_arn": with_a_job}),
            _validate(url, "/api/batch/poller/status", "GET"),
            _validate(url, "/api/batch/process-completed", "POST"),
            _validate(url, "/healthz", "GET"),
            _validate(url, "/api/batch/jobs/{job}/records", "GET", path_parameters=job),
            _validate(url, "/api/batch/jobs/{job}/errors", "GET", path_parameters=job),
            _validate(url, "/api/batch/activity", "GET"),
            _validate(url, "/api/batch/jobs", "GET", query={"q": "job", "status": "COMPLETED"}),
            _validate(url, "/api/batch/records/{record_id}", "GET", path_parameters=record),
            _validate(url, "/api/batch/groups", "GET"),
            _validate(url, "/api/batch/groups/{group}", "GET", path_parameters=group),
            _validate(url, "/api/batch/groups/{group}/records", "GET", path_parameters=group),
            _validate(
                url, "/api/batch/groups/{group}/seal", "POST", path_parameters=group, body={}
            ),
        ]
    )

    assert statuses == [200] * 16

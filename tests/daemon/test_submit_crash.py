"""A `submit` stopped (SIGKILL, SIGINT) after Bedrock made its job and before it heard back:
one job, found by its client token, tracked at the daemon's next start or the next submit."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import orjson

from batch_poller.emulator.server import Endpoints
from tests.helpers import BUCKET, NOVA, ROLE_ARN, ensure_bucket, make_records
from tests.processes import PYTHON_MODULE, query, run_command, write_config


async def listed_jobs(bedrock: Any) -> list[dict[str, Any]]:
    page = await bedrock.list_model_invocation_jobs(maxResults=100)
    return list(page.get("invocationJobSummaries", []))


async def stopped_after_the_job_was_made(
    tmp_path: Path, endpoints: Endpoints, control: Any, bedrock: Any, s3: Any, stop: int
) -> tuple[tuple[str, ...], int | None, bytes]:
    """Runs `submit` while Bedrock holds its answer to CreateModelInvocationJob, sends it
    `stop` once the job is made, and returns its arguments, exit code and stderr."""
    await ensure_bucket(s3, BUCKET)
    config = write_config(tmp_path, endpoints)
    source = tmp_path / "prompts.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in make_records(150)))
    await control.configure(
        faults={"answer_delay_ms": 600_000, "operations": ["CreateModelInvocationJob"]}
    )
    args = ("--config", str(config), "submit", str(source), "--model", NOVA, "--role", ROLE_ARN)
    args += ("--bucket", f"s3://{BUCKET}/submitted/")
    submitting = await asyncio.create_subprocess_exec(
        *PYTHON_MODULE, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not await listed_jobs(bedrock):  # the job is made: the answer is held
            assert submitting.returncode is None, "submit ended before its job was made"
            assert time.monotonic() < deadline, "gave up waiting for the job to be made"
            await asyncio.sleep(0.02)
        submitting.send_signal(stop)
    finally:
        _, stderr = await submitting.communicate()
        await control.configure(faults={"answer_delay_ms": 0})
    return args, submitting.returncode, stderr


async def test_a_submit_killed_before_it_heard_back_leaves_one_job_tracked_at_the_next_start(
    tmp_path: Path, endpoints: Endpoints, control: Any, bedrock: Any, s3: Any
) -> None:
    args, _, _ = await stopped_after_the_job_was_made(
        tmp_path, endpoints, control, bedrock, s3, signal.SIGKILL
    )
    database = tmp_path / "daemon.db"
    assert query(database, "SELECT state, batch_job_arn FROM submissions") == [("creating", None)]

    restarted = run_command(*args[:2], "run", "--once")

    assert restarted.returncode == 0, restarted.stderr
    (job,) = await listed_jobs(bedrock)
    assert query(database, "SELECT state, batch_job_arn FROM submissions") == [
        ("tracked", job["jobArn"])
    ]
    (folder,) = query(database, "SELECT s3_folder FROM bedrock_batch_jobs")
    assert folder[0].endswith("/input/")


async def test_a_submit_interrupted_says_so_in_one_line_and_a_run_again_makes_one_job(
    tmp_path: Path, endpoints: Endpoints, control: Any, bedrock: Any, s3: Any
) -> None:
    args, code, stderr = await stopped_after_the_job_was_made(
        tmp_path, endpoints, control, bedrock, s3, signal.SIGINT
    )

    assert code == 130
    assert stderr.decode().strip().splitlines()[-1] == "batch-poller: submit interrupted"
    assert b"Traceback" not in stderr
    again = run_command(*args)
    assert again.returncode == 0, again.stderr
    assert len(await listed_jobs(bedrock)) == 1

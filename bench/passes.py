"""2. A pass over many in-progress jobs with Bedrock latency: calls and wall time, listing
versus a GetModelInvocationJob per job."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from batch_poller.app import build_supervisor, open_runtime
from batch_poller.config import Settings
from batch_poller.emulator.control import EmulatorControl
from batch_poller.tracking import track_jobs
from bench.runtime import client, endpoints

ROLE = "arn:aws:iam::123456789012:role/Bench"


async def bench_pass(jobs: int, latency_ms: float) -> dict[str, Any]:
    async with EmulatorControl(endpoints().bedrock) as control, client("bedrock") as bedrock:
        await control.reset()
        await control.configure(durations={"submitted": 10**6})
        arns = await _create_jobs(bedrock, jobs)
        listed = await _one_pass(control, arns, latency_ms, listing=True)
        per_job = await _one_pass(control, arns, latency_ms, listing=False)
        await control.configure(faults={"latency_ms": 0})
    return {
        "jobs": jobs,
        "calls, listing": listed[0],
        "seconds, listing": round(listed[1], 2),
        "calls, Get per job": per_job[0],
        "seconds, Get per job": round(per_job[1], 2),
        "calls ratio": round(per_job[0] / max(listed[0], 1), 1),
    }


async def _create_jobs(bedrock: Any, count: int, prefix: str = "bench") -> list[str]:
    async with client("s3") as s3:
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            await s3.create_bucket(Bucket="bench-pass")
        await s3.put_object(
            Bucket="bench-pass", Key="in/a.jsonl", Body=b'{"recordId":"a","modelInput":{}}\n'
        )
    limit = asyncio.Semaphore(32)

    async def create(index: int) -> str:
        async with limit:
            response = await bedrock.create_model_invocation_job(
                jobName=f"{prefix}-{index}",
                roleArn=ROLE,
                modelId="amazon.nova-lite-v1:0",
                inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://bench-pass/in/a.jsonl"}},
                outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://bench-pass/out/"}},
            )
            return str(response["jobArn"])

    return list(await asyncio.gather(*(create(i) for i in range(count))))


async def _one_pass(
    control: EmulatorControl, arns: list[str], latency_ms: float, *, listing: bool
) -> tuple[int, float]:
    """Bedrock calls and seconds of one pass over every job, in a fresh database."""
    with tempfile.TemporaryDirectory(prefix="bench-pass-") as folder:
        settings = Settings(
            aws={
                "bedrock_endpoint_url": endpoints().bedrock,
                "s3_endpoint_url": endpoints().s3,
                "max_calls_per_second": 0,
            },
            database={"url": f"sqlite:///{Path(folder) / 'pass.db'}"},
            poller={"check_interval_seconds": 0, "max_concurrent_jobs": 16},
        )
        async with open_runtime(settings) as rt:
            # Tracked as a user would: each job read once, its submit time from Bedrock.
            await control.configure(faults={"latency_ms": 0})
            for arn in arns:
                await track_jobs(rt, [arn])
            await control.configure(faults={"latency_ms": latency_ms})
            supervisor = build_supervisor(rt)
            if not listing:

                async def no_listing(*_: Any, **__: Any) -> tuple[dict[str, Any], set[str]]:
                    return {}, set()

                supervisor._survey.run = no_listing  # type: ignore[method-assign]
            before = await control.calls()
            started = time.perf_counter()
            await supervisor.run_pass()
            seconds = time.perf_counter() - started
            after = await control.calls()
    calls = sum(
        after.get(op, 0) - before.get(op, 0)
        for op in ("ListModelInvocationJobs", "GetModelInvocationJob")
    )
    return calls, seconds

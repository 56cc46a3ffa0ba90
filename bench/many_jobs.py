"""7. Many jobs finishing at once: jobs of a few hundred records, all completed before a pass,
stored by one pass at each concurrency (`[poller] max_concurrent_jobs`, with as many result
streams): jobs a second against concurrency, and the statements the pass runs for each job."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from batch_poller.app import build_supervisor, open_runtime
from batch_poller.config import Settings
from batch_poller.domain import JobStatus
from batch_poller.emulator.control import EmulatorControl
from batch_poller.tracking import track_jobs
from bench.data import write_output
from bench.runtime import client, endpoints

ROLE = "arn:aws:iam::123456789012:role/Bench"
BUCKET = "bench-many"


async def bench_many_jobs(
    jobs: int, records: int, concurrencies: list[int]
) -> list[dict[str, Any]]:
    async with EmulatorControl(endpoints().bedrock) as control, client("bedrock") as bedrock:
        await control.reset()
        arns = await _completed_jobs(control, bedrock, jobs, records)
        rows = []
        for concurrency in concurrencies:
            seconds, statements, stored = await _store_all(arns, concurrency)
            assert stored == jobs, f"{stored} of {jobs} jobs stored"
            rows.append(
                {
                    "jobs": jobs,
                    "records a job": records,
                    "max_concurrent_jobs": concurrency,
                    "seconds": round(seconds, 2),
                    "jobs/s": round(jobs / seconds, 1),
                    "records/s": round(jobs * records / seconds),
                    "statements a job": round(statements / jobs, 1),
                }
            )
    return rows


async def _completed_jobs(
    control: EmulatorControl, bedrock: Any, jobs: int, records: int
) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "input.jsonl"
        write_output(source, records * 1024, 1024)  # lines with recordId and modelInput
        async with client("s3") as s3:
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                await s3.create_bucket(Bucket=BUCKET)
            await s3.put_object(Bucket=BUCKET, Key="in/input.jsonl", Body=source.read_bytes())
    limit = asyncio.Semaphore(16)

    async def create(index: int) -> str:
        async with limit:
            response = await bedrock.create_model_invocation_job(
                jobName=f"many-{index}",
                roleArn=ROLE,
                modelId="amazon.nova-lite-v1:0",
                inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/in/input.jsonl"}},
                outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}},
            )
            arn = str(response["jobArn"])
            await control.finish(arn, "Completed")  # its output written now, before any pass
            return arn

    return list(await asyncio.gather(*(create(i) for i in range(jobs))))


async def _store_all(arns: list[str], concurrency: int) -> tuple[float, int, int]:
    """Seconds of the pass that stores every job, in a fresh database; the statements it ran
    through SQLAlchemy (the bulk writes run one more each, through the driver)."""
    with tempfile.TemporaryDirectory(prefix="bench-many-") as folder:
        settings = Settings(
            aws={
                "bedrock_endpoint_url": endpoints().bedrock,
                "s3_endpoint_url": endpoints().s3,
                "max_calls_per_second": 0,
            },
            database={"url": f"sqlite:///{Path(folder) / 'many.db'}"},
            poller={"check_interval_seconds": 0, "max_concurrent_jobs": concurrency},
            results={"max_concurrent_fetches": concurrency},
            cleanup={"enabled": False},
        )
        async with open_runtime(settings) as rt:
            for start in range(0, len(arns), 100):
                await asyncio.gather(*(track_jobs(rt, [a]) for a in arns[start : start + 100]))
            statements = 0

            def count(*_: Any) -> None:
                nonlocal statements
                statements += 1

            engine = rt.store.engine.sync_engine
            event.listen(engine, "before_cursor_execute", count)
            started = time.perf_counter()
            await build_supervisor(rt).run_pass()
            seconds = time.perf_counter() - started
            event.remove(engine, "before_cursor_execute", count)
            stored = sum(
                1
                for job in await rt.store.list_jobs(limit=len(arns))
                if job.status is JobStatus.COMPLETED
            )
    return seconds, statements, stored

"""7. Many jobs finishing at once: jobs of a few hundred records, tracked while they ran, all
completed before a pass, stored by that pass at each concurrency (`[poller]
max_concurrent_jobs`, with as many result streams): jobs a second against concurrency, and the
statements the pass runs for each job (its check, the fetch, the settle).

`python -m bench.many_jobs [JOBS [RECORDS [CONCURRENCY,...]]]` runs this section alone and prints
those statements grouped by their SQL."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event

import bench.runtime
from batch_poller.app import build_supervisor, open_runtime
from batch_poller.config import Settings
from batch_poller.domain import JobStatus
from batch_poller.emulator.control import EmulatorControl
from batch_poller.emulator.process import EmulatorProcess
from batch_poller.tracking import track_jobs
from bench.data import write_output
from bench.runtime import client, endpoints

ROLE = "arn:aws:iam::123456789012:role/Bench"
BUCKET = "bench-many"


async def bench_many_jobs(
    jobs: int, records: int, concurrencies: list[int], *, by_statement: bool = False
) -> list[dict[str, Any]]:
    """One row per concurrency; `by_statement` prints, for each, the statements the pass ran
    for each job, grouped by their SQL."""
    async with EmulatorControl(endpoints().bedrock) as control, client("bedrock") as bedrock:
        await control.reset()
        await control.freeze_clock()  # the jobs wait at Submitted until finished below
        with tempfile.TemporaryDirectory(prefix="bench-many-") as folder:
            tracked = Path(folder) / "tracked.db"
            arns = await _jobs_tracked_then_finished(control, bedrock, jobs, records, tracked)
            rows = []
            for concurrency in concurrencies:
                seconds, statements, stored = await _store_all(tracked, len(arns), concurrency)
                assert stored == jobs, f"{stored} of {jobs} jobs stored"
                if by_statement:
                    _print_statements(statements, jobs, concurrency)
                rows.append(
                    {
                        "jobs": jobs,
                        "records a job": records,
                        "max_concurrent_jobs": concurrency,
                        "seconds": round(seconds, 2),
                        "jobs/s": round(jobs / seconds, 1),
                        "records/s": round(jobs * records / seconds),
                        "statements a job": round(statements.total() / jobs, 1),
                    }
                )
    return rows


async def _jobs_tracked_then_finished(
    control: EmulatorControl, bedrock: Any, jobs: int, records: int, tracked: Path
) -> list[str]:
    """Jobs created and tracked (in `tracked`) while they wait at Bedrock, then completed there,
    their output written: what the next pass finds."""
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
            return str(response["jobArn"])

    arns = list(await asyncio.gather(*(create(i) for i in range(jobs))))
    async with open_runtime(_settings(tracked, 1)) as rt:
        for start in range(0, len(arns), 100):
            await asyncio.gather(*(track_jobs(rt, [a]) for a in arns[start : start + 100]))

    async def finish(arn: str) -> None:
        async with limit:
            await control.finish(arn, "Completed")  # its output written now, before the pass

    await asyncio.gather(*(finish(arn) for arn in arns))
    return arns


def _settings(database: Path, concurrency: int) -> Settings:
    return Settings(
        aws={
            "bedrock_endpoint_url": endpoints().bedrock,
            "s3_endpoint_url": endpoints().s3,
            "max_calls_per_second": 0,
        },
        database={"url": f"sqlite:///{database}"},
        poller={"check_interval_seconds": 0, "max_concurrent_jobs": concurrency},
        results={"max_concurrent_fetches": concurrency},
        cleanup={"enabled": False},
    )


async def _store_all(tracked: Path, jobs: int, concurrency: int) -> tuple[float, Counter[str], int]:
    """Seconds of the pass that checks and stores every job, in a copy of the database that
    tracked them; the statements it ran through SQLAlchemy by their SQL (the bulk writes run
    one more each, through the driver)."""
    with tempfile.TemporaryDirectory(prefix="bench-many-") as folder:
        database = Path(folder) / "many.db"
        shutil.copyfile(tracked, database)
        async with open_runtime(_settings(database, concurrency)) as rt:
            statements: Counter[str] = Counter()

            def count(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
                statements[_shape(sql)] += 1

            engine = rt.store.engine.sync_engine
            event.listen(engine, "before_cursor_execute", count)
            started = time.perf_counter()
            await build_supervisor(rt).run_pass()
            seconds = time.perf_counter() - started
            event.remove(engine, "before_cursor_execute", count)
            stored = sum(
                1
                for job in await rt.store.list_jobs(limit=jobs)
                if job.status is JobStatus.COMPLETED
            )
    return seconds, statements, stored


_PARAMS = re.compile(r"\((?:\?|\$\d+|%\(\w+\)s)(?:, (?:\?|\$\d+|%\(\w+\)s))*\)")
_REPEATS = re.compile(
    r"(WHEN \(\S+ = \?\) THEN \? )(?:WHEN \(\S+ = \?\) THEN \? )+|(\(\.\.\.\))(?:, \(\.\.\.\))+"
)


def _shape(sql: str) -> str:
    """A statement's SQL on one line, without the lengths of its lists (IN lists, the rows of a
    multi-row INSERT, the jobs of a CASE): statements that differ only in those are one
    shape."""
    flat = _PARAMS.sub("(...)", " ".join(sql.split()))
    return _REPEATS.sub(lambda m: m.group(1) + "... " if m.group(1) else "(...), ...", flat)


def _print_statements(statements: Counter[str], jobs: int, concurrency: int) -> None:
    print(f"statements a job at max_concurrent_jobs {concurrency} (of {jobs} jobs):")
    for sql, n in statements.most_common():
        print(f"  {n / jobs:7.3f}  {n:6d}  {sql[:150]}")
    print(f"  {statements.total() / jobs:7.3f}  {statements.total():6d}  in all")


def main() -> None:
    args = sys.argv[1:]
    jobs = int(args[0]) if len(args) > 0 else 50
    records = int(args[1]) if len(args) > 1 else 200
    concurrencies = [int(c) for c in (args[2] if len(args) > 2 else "1,8,32").split(",")]
    emulator = EmulatorProcess.start()
    bench.runtime.ENDPOINTS = emulator.endpoints
    try:
        rows = asyncio.run(bench_many_jobs(jobs, records, concurrencies, by_statement=True))
    finally:
        emulator.stop()
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()

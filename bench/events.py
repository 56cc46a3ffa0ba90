"""6. Events against polling alone: Bedrock calls in an hour for 100 jobs in progress, and the
time from a job's completion to its results stored.

The hour is simulated (the daemon's injected clock, a pass at every interval it would wait),
so its calls are the daemon's own over a real hour. The completion-to-stored time with events is
measured in real time: the emulator's event through the moto server's SQS queue, the consumer's
long poll, the pass it wakes. Without events it is the wait for the pass that finds the job due,
on the same simulated clock, for completions spread over an interval."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from batch_poller.app import build_supervisor, open_runtime
from batch_poller.config import Settings
from batch_poller.emulator.control import EmulatorControl
from batch_poller.events.consumer import EventConsumer
from batch_poller.tracking import track_jobs
from bench.passes import _create_jobs
from bench.runtime import client, endpoints

HOUR = 3600


class SimulatedClock:
    """The daemon's clock, moved by the benchmark; a sleep returns at once."""

    def __init__(self) -> None:
        self.current = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


def _settings(folder: str, **sections: Any) -> Settings:
    base: dict[str, Any] = {
        "aws": {
            "bedrock_endpoint_url": endpoints().bedrock,
            "s3_endpoint_url": endpoints().s3,
            "sqs_endpoint_url": endpoints().s3,
            "max_calls_per_second": 0,
        },
        "database": {"url": f"sqlite:///{Path(folder) / 'events.db'}"},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Settings(**base)


async def bench_events(jobs: int) -> list[dict[str, Any]]:
    async with EmulatorControl(endpoints().bedrock) as control, client("bedrock") as bedrock:
        await control.reset()
        await control.configure(durations={"submitted": 10**6})
        arns = await _create_jobs(bedrock, jobs)
        polling = await _calls_in_an_hour(control, arns, events=False)
        evented = await _calls_in_an_hour(control, arns, events=True)
        waits_polling = await _polling_waits(control, bedrock, samples=6)
        waits_events = await _event_waits(control, bedrock, samples=6)
    return [
        {
            "mode": "polling (interval 60 s, checks 30 s)",
            f"Bedrock calls per hour, {jobs} jobs in progress": polling,
            "completion to stored, median s": round(statistics.median(waits_polling), 2),
            "max s": round(max(waits_polling), 2),
        },
        {
            "mode": "events (fallback 300 s)",
            f"Bedrock calls per hour, {jobs} jobs in progress": evented,
            "completion to stored, median s": round(statistics.median(waits_events), 2),
            "max s": round(max(waits_events), 2),
        },
    ]


async def _calls_in_an_hour(control: EmulatorControl, arns: list[str], *, events: bool) -> int:
    """The Bedrock calls of an hour of passes over jobs that stay in progress."""
    clock = SimulatedClock()
    with tempfile.TemporaryDirectory(prefix="bench-events-") as folder:
        settings = _settings(folder)
        async with open_runtime(settings, clock=clock) as rt:
            for arn in arns:
                await track_jobs(rt, [arn])
            supervisor = build_supervisor(rt)
            interval = (
                settings.events.fallback_interval_seconds
                if events
                else settings.poller.interval_seconds
            )
            before = await control.calls()
            for _ in range(int(HOUR / interval)):
                clock.current += timedelta(seconds=interval)
                await supervisor.run_pass()
            after = await control.calls()
    return sum(
        after.get(op, 0) - before.get(op, 0)
        for op in ("ListModelInvocationJobs", "GetModelInvocationJob")
    )


async def _polling_waits(control: EmulatorControl, bedrock: Any, samples: int) -> list[float]:
    """Seconds from completion to stored without events: completions spread over a pass
    interval, passes every interval, on the simulated clock."""
    waits = []
    for n in range(samples):
        clock = SimulatedClock()
        [arn] = await _create_jobs(bedrock, 1, prefix=f"polled-{n}")
        with tempfile.TemporaryDirectory(prefix="bench-events-") as folder:
            settings = _settings(folder)
            async with open_runtime(settings, clock=clock) as rt:
                await track_jobs(rt, [arn])
                supervisor = build_supervisor(rt)
                await supervisor.run_pass(check_all=True)
                interval = settings.poller.interval_seconds
                # It completes at a point of the interval, after the last pass.
                offset = interval * (n + 0.5) / samples
                completed = clock.current + timedelta(seconds=offset)
                await control.finish(arn, "Completed")
                stored = None
                while stored is None:  # a pass at every interval, until one stores it
                    clock.current += timedelta(seconds=interval)
                    await supervisor.run_pass()
                    job = await rt.store.get_job(arn)
                    stored = None if job is None else job.results_fetched_at
                waits.append((stored - completed).total_seconds())
    return waits


async def _event_waits(control: EmulatorControl, bedrock: Any, samples: int) -> list[float]:
    """Seconds from completion to stored with events, in real time: the daemon's loop and its
    consumer running, the event through SQS."""
    async with client("sqs") as sqs:
        queue = (await sqs.create_queue(QueueName="bench-events"))["QueueUrl"]
        await control.configure(events_queue_url=queue)
        try:
            return [await _one_event_wait(control, bedrock, queue, n) for n in range(samples)]
        finally:
            await control.configure(events_queue_url=None)


async def _one_event_wait(control: EmulatorControl, bedrock: Any, queue: str, n: int) -> float:
    [arn] = await _create_jobs(bedrock, 1, prefix=f"evented-{n}")
    with tempfile.TemporaryDirectory(prefix="bench-events-") as folder:
        settings = _settings(
            folder,
            events={"sqs_queue_url": queue},
            poller={"check_interval_seconds": 3600},
        )
        async with open_runtime(settings) as rt:
            await track_jobs(rt, [arn])
            supervisor = build_supervisor(rt)
            consumer = EventConsumer(rt, supervisor.wake)
            supervisor.events = consumer.counts
            await supervisor.run_pass(check_all=True)
            stored = asyncio.Event()

            async def after_pass(_: Any) -> None:
                job = await rt.store.get_job(arn)
                if job is not None and job.results_fetched_at is not None:
                    stored.set()

            supervisor.after_pass = after_pass
            tasks = [asyncio.create_task(supervisor.run()), asyncio.create_task(consumer.run())]
            started = time.perf_counter()
            await control.finish(arn, "Completed")
            await asyncio.wait_for(stored.wait(), 120)
            waited = time.perf_counter() - started
            rt.stopping.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, 30)
    return waited

"""The SIGKILL campaign: a real daemon killed at seeded random and targeted moments, restarted,
and judged against an independent copy of the outputs taken before it started.

BATCH_POLLER_CAMPAIGN_KILLS sets the number of kills (one per iteration, 10 by default);
BATCH_POLLER_CAMPAIGN_SEED the seed (iteration i draws from "seed:i", so a failure replays with
the same seed); BATCH_POLLER_CAMPAIGN_REPORT a path for a JSON summary. `make soak` runs 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from batch_poller.app import open_runtime
from batch_poller.config import load_settings
from batch_poller.emulator.control import EmulatorControl
from batch_poller.emulator.server import Endpoints
from batch_poller.tracking import track_jobs
from tests.faults.invariants import (
    DeletionWatch,
    check_bucket,
    check_jobs,
    settled,
    stored_record_count,
)
from tests.faults.proxy import NO_FAULTS, FaultProxy, Faults, proxy_in_thread
from tests.faults.shapes import CampaignJob, make_jobs, put_bystanders, read_expected
from tests.faults.warm import WarmDaemon
from tests.helpers import ensure_bucket
from tests.processes import DEADLINE, Daemon, write_config

KILLS = int(os.environ.get("BATCH_POLLER_CAMPAIGN_KILLS", "10"))
SEED = int(os.environ.get("BATCH_POLLER_CAMPAIGN_SEED", "20260115"))
REPORT = os.environ.get("BATCH_POLLER_CAMPAIGN_REPORT")
MOMENTS = ("random", "first_commit", "first_deletion")
# A random kill comes this many seconds at most after the daemon says it started: its work on
# an iteration's jobs takes about 1.5 s, so kills spread over ingest, cleanup and idling.
RANDOM_KILL_WITHIN = 2.0
# Mild S3 faults for every other iteration: survived by the retries, never a stuck job.
S3_FAULTS = Faults(
    slowdown_rate=0.05,
    stall_rate=0.05,
    stall_seconds=0.2,
    reset_rate=0.03,
    reset_after_bytes=700,
    truncate_rate=0.03,
)


async def test_sigkill_at_any_moment_loses_doubles_and_deletes_nothing_it_should_not(
    tmp_path: Path,
    endpoints: Endpoints,
    control: EmulatorControl,
    bedrock: Any,
    s3: Any,
) -> None:
    summary: dict[str, Any] = {
        "seed": SEED,
        "kills": 0,
        "kills_by_moment": Counter(),
        "kills_with_work_left": 0,
        "kills_through_faulty_s3": 0,
        "s3_faults_injected": Counter(),
        "jobs": 0,
        "rows_compared": 0,
        "objects_deleted": 0,
        "seconds_by_phase": Counter(),
        "violations": [],
    }
    started = time.monotonic()
    with proxy_in_thread(endpoints.s3, seed=SEED) as proxy:
        for iteration in range(KILLS):
            try:
                found = await _one_iteration(
                    iteration, tmp_path, endpoints, control, bedrock, s3, proxy, summary
                )
            except Exception as error:
                error.add_note(f"iteration {iteration}, BATCH_POLLER_CAMPAIGN_SEED={SEED}")
                raise
            summary["violations"] += [f"iteration {iteration}: {v}" for v in found]
            summary["s3_faults_injected"] = Counter(
                {k: v for k, v in proxy.counts.items() if k != "requests"}
            )
            summary["seconds"] = round(time.monotonic() - started, 1)
            _write_report(summary)
    print(f"\nkill campaign:\n{_figures(summary)}")

    assert summary["kills"] == KILLS
    assert summary["rows_compared"] > 0
    # A kill after the first of some 70 batches always leaves work for the restart.
    assert summary["kills_with_work_left"] >= summary["kills_by_moment"]["first_commit"]
    assert not summary["violations"], (
        f"replay with BATCH_POLLER_CAMPAIGN_SEED={SEED} BATCH_POLLER_CAMPAIGN_KILLS={KILLS}:\n"
        + "\n".join(summary["violations"][:50])
    )


async def _one_iteration(
    iteration: int,
    tmp_path: Path,
    endpoints: Endpoints,
    control: EmulatorControl,
    bedrock: Any,
    s3: Any,
    proxy: FaultProxy,
    summary: dict[str, Any],
) -> list[str]:
    draw = random.Random(f"{SEED}:{iteration}")
    moment = MOMENTS[iteration % len(MOMENTS)]
    faulty_s3 = iteration % 2 == 1
    bucket = f"campaign-{iteration}"
    folder = tmp_path / f"iteration-{iteration}"
    folder.mkdir()
    database = folder / "daemon.db"
    config = write_config(
        folder,
        Endpoints(endpoints.bedrock, proxy.url if faulty_s3 else endpoints.s3),
        # Small batches so a kill lands mid-ingest; quick fetch retries so S3 faults cost little.
        results={"batch_size": 5, "retry_base_seconds": 0.05, "max_retries": 20},
        poller={"interval_seconds": 0.1, "check_interval_seconds": 0},
        http={"enabled": False},
    )
    phases = _Phases(summary["seconds_by_phase"])
    # Both processes import while the jobs are made: start-up is most of an iteration's cost.
    first, second = WarmDaemon(config), WarmDaemon(config)
    stuck = []
    try:
        jobs, rows, before = await _prepare(bucket, config, endpoints, control, bedrock, s3, proxy)
        phases.end("setup")
        proxy.faults = S3_FAULTS if faulty_s3 else NO_FAULTS
        watch = DeletionWatch(s3, bucket, database, jobs)
        watcher = asyncio.create_task(watch.run())
        try:
            interrupted = await _kill_and_restart(
                first, second, moment, draw, database, watch, phases
            )
            summary["kills_with_work_left"] += interrupted
            await asyncio.sleep(0.05)  # one more listing sees the last deletions
        except AssertionError as error:
            # A daemon that exits, or jobs that never settle, break a promise too: recorded,
            # and the campaign goes on.
            stuck.append(str(error))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    finally:
        # Settled, the second has nothing left to lose: a kill ends it soonest (not counted).
        first.kill()
        second.kill()
    proxy.faults = NO_FAULTS

    summary["kills"] += 1
    summary["kills_by_moment"][moment] += 1
    summary["kills_through_faulty_s3"] += faulty_s3
    summary["jobs"] += len(jobs)
    summary["rows_compared"] += rows
    summary["objects_deleted"] += len(watch.deleted)
    after = await _etags(s3, bucket)
    return stuck + watch.violations + check_jobs(database, jobs) + check_bucket(before, after, jobs)


async def _prepare(
    bucket: str,
    config: Path,
    endpoints: Endpoints,
    control: EmulatorControl,
    bedrock: Any,
    s3: Any,
    proxy: FaultProxy,
) -> tuple[list[CampaignJob], int, dict[str, str]]:
    """The jobs made and tracked, the records expected of them, the bucket's ETags."""
    proxy.faults = NO_FAULTS
    await _reset(endpoints, control)
    await ensure_bucket(s3, bucket)
    jobs = await make_jobs(bedrock, s3, control, bucket)
    await put_bystanders(s3, bedrock, control, bucket, jobs)
    rows = await read_expected(s3, bucket, jobs)
    before = await _etags(s3, bucket)
    async with open_runtime(load_settings(str(config))) as rt:
        for job in jobs:
            await track_jobs(rt, [job.arn], f"s3://{bucket}/{job.input_folder}")
    return jobs, rows, before


async def _kill_and_restart(
    first: WarmDaemon,
    second: WarmDaemon,
    moment: str,
    draw: random.Random,
    database: Path,
    watch: DeletionWatch,
    phases: _Phases,
) -> bool:
    """Kills the first daemon at the moment, lets the second settle; True if the kill left
    work to do."""
    first.go()
    try:
        await _wait_for_moment(first, moment, draw, database, watch)
    finally:
        first.signal(signal.SIGKILL)
        first.wait(timeout=10)
    phases.end("until_the_kill")
    work_left = not settled(database, watch.jobs)
    second.go()
    await _until(second, lambda: settled(database, watch.jobs), "every job settled", 0.02)
    phases.end("restart_until_settled")
    return work_left


async def _wait_for_moment(
    daemon: Daemon, moment: str, draw: random.Random, database: Path, watch: DeletionWatch
) -> None:
    if moment == "random":
        await _until(daemon, lambda: _said(daemon, "daemon_started"), "the start")
        # A kill moment, not a condition: any moment at all must be safe.
        await asyncio.sleep(draw.uniform(0, RANDOM_KILL_WITHIN))
    elif moment == "first_commit":
        await _until(daemon, lambda: stored_record_count(database) > 0, "the first batch")
    else:
        await _until(daemon, watch.first_deletion.is_set, "the first deletion")


async def _until(
    daemon: Daemon, condition: Callable[[], bool], what: str, every: float = 0.005
) -> None:
    """Waits for a state, the deadline only bounding a hang; the event loop keeps running."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if daemon.process.poll() is not None:
            code = daemon.process.returncode
            raise AssertionError(f"the daemon exited ({code}) before {what}:\n{daemon.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}:\n{daemon.tail()}")
        await asyncio.sleep(every)


async def _reset(endpoints: Endpoints, control: EmulatorControl) -> None:
    """An empty emulator and S3 for every iteration, with a clock that stays put."""
    await control.reset()
    await control.freeze_clock()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{endpoints.s3}/moto-api/reset") as response,
    ):
        assert response.status == 200


async def _etags(s3: Any, bucket: str) -> dict[str, str]:
    found: dict[str, str] = {}
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update((item["Key"], item["ETag"]) for item in page.get("Contents", []))
    return found


class _Phases:
    """Seconds spent in each phase of an iteration, summed over the campaign."""

    def __init__(self, totals: Counter[str]) -> None:
        self.totals = totals
        self.last = time.monotonic()

    def end(self, phase: str) -> None:
        now = time.monotonic()
        self.totals[phase] += round(now - self.last, 2)
        self.last = now


def _said(daemon: Daemon, event: str) -> bool:
    return f'"event": "{event}"' in daemon.log_path.read_text()


def _figures(summary: dict[str, Any]) -> str:
    figures = {**summary, "violation_count": len(summary["violations"])}
    return json.dumps(figures, indent=2, default=dict)


def _write_report(summary: dict[str, Any]) -> None:
    """After every iteration, so an interrupted soak still leaves its figures."""
    if REPORT:
        Path(REPORT).write_text(_figures(summary) + "\n")

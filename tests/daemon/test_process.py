"""The real `batch-poller run` process: SIGTERM and SIGINT stop it gracefully, SIGKILL loses
nothing, and a restart finishes the work with every record stored once and S3 cleaned once."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from batch_poller.app import open_runtime
from batch_poller.config import load_settings
from batch_poller.domain import job_id_from_arn
from batch_poller.emulator.server import Endpoints
from batch_poller.tracking import track_jobs
from tests.helpers import BUCKET, create_job, list_keys, make_records, put_input
from tests.processes import Daemon, count_records, job_column, running, write_config

BIG = 20_000


async def _track_new_job(
    config: Path, bedrock: Any, s3: Any, control: Any, records: int, *, finish: bool = True
) -> str:
    uri = await put_input(s3, "big/input.jsonl", make_records(records))
    arn = await create_job(bedrock, uri, name="big", output_uri=f"s3://{BUCKET}/out/")
    async with open_runtime(load_settings(str(config))) as rt:
        await track_jobs(rt, [arn], f"s3://{BUCKET}/big/")
    if finish:
        await control.finish(arn, "Completed")
    return arn


def _cleanups(*daemons: Daemon) -> int:
    return sum(e.get("event") == "cleanup_completed" for d in daemons for e in d.events())


@pytest.fixture
def config(tmp_path: Path, endpoints: Endpoints) -> Path:
    # Small batches make a large ingest take long enough to be interrupted in the middle.
    return write_config(tmp_path, endpoints, results={"batch_size": 50})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_during_ingest_exits_0_and_a_restart_finishes_the_job(
    config: Path, bedrock: Any, s3: Any, control: Any, signum: int
) -> None:
    database = config.parent / "daemon.db"
    arn = await _track_new_job(config, bedrock, s3, control, BIG)
    with running(config) as first:
        first.wait_for(lambda: count_records(database, arn) > 0, "the first records")
        first.signal(signum)
        code = first.wait(timeout=10)
    stored_at_stop = count_records(database, arn)

    assert code == 0
    assert any(e.get("event") == "daemon_stopped" for e in first.events())
    if stored_at_stop < BIG:
        assert job_column(database, arn, "results_fetched_at") is None
        assert len(await list_keys(s3, f"out/{job_id_from_arn(arn)}/")) == 2

    with running(config) as second:
        second.wait_for(lambda: job_column(database, arn, "cleanup_completed_at"), "cleanup")
    assert count_records(database, arn) == BIG
    assert job_column(database, arn, "status") == "COMPLETED"
    assert _cleanups(first, second) == 1


async def test_sigkill_during_ingest_then_restart_stores_every_record_once(
    config: Path, bedrock: Any, s3: Any, control: Any
) -> None:
    database = config.parent / "daemon.db"
    arn = await _track_new_job(config, bedrock, s3, control, BIG)
    with running(config) as first:
        first.wait_for(lambda: count_records(database, arn) > 0, "the first records")
        first.signal(signal.SIGKILL)
        first.wait(timeout=10)
    killed_at = count_records(database, arn)

    assert 0 < killed_at < BIG, "the kill must land in the middle of the ingest"
    assert job_column(database, arn, "results_fetched_at") is None

    with running(config) as second:
        second.wait_for(lambda: job_column(database, arn, "cleanup_completed_at"), "cleanup")
    assert count_records(database, arn) == BIG
    assert job_column(database, arn, "total_records") == BIG
    assert await list_keys(s3, "big/") == []
    assert await list_keys(s3, "out/") == []
    assert _cleanups(first, second) == 1, second.tail()


async def test_sigkill_between_storing_and_cleanup_then_restart_cleans_once(
    config: Path, bedrock: Any, s3: Any, control: Any
) -> None:
    database = config.parent / "daemon.db"
    arn = await _track_new_job(config, bedrock, s3, control, 500)
    # With cleanup off, the first process stops exactly between the two: stored, not cleaned.
    with running(config, env={"BATCH_POLLER_CLEANUP__ENABLED": "false"}) as first:
        first.wait_for(lambda: job_column(database, arn, "results_fetched_at"), "results")
        first.signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert len(await list_keys(s3, f"out/{job_id_from_arn(arn)}/")) == 2
    assert job_column(database, arn, "cleanup_completed_at") is None

    with running(config) as second:
        second.wait_for(lambda: job_column(database, arn, "cleanup_completed_at"), "cleanup")
    assert count_records(database, arn) == 500
    assert await list_keys(s3, "big/") == [] and await list_keys(s3, "out/") == []
    assert _cleanups(first, second) == 1


async def test_a_second_signal_exits_at_once(
    config: Path, bedrock: Any, s3: Any, control: Any
) -> None:
    arn = await _track_new_job(config, bedrock, s3, control, 5, finish=False)
    # Every status check now takes 30 s, so a graceful stop would have to wait for one.
    await control.set_job_faults(arn, {"latency_ms": 30_000})
    with running(config) as daemon:
        # Tracking made the first Get; the daemon's own first check is the second.
        while (await control.calls()).get("GetModelInvocationJob", 0) < 2:
            assert daemon.process.poll() is None, daemon.tail()
            await asyncio.sleep(0.01)
        daemon.signal(signal.SIGTERM)
        daemon.wait_for(
            lambda: any(e.get("event") == "stopping" for e in daemon.events()), "stopping"
        )
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(timeout=10)

    assert code == 128 + signal.SIGTERM
    assert any(e.get("event") == "forced_stop" for e in daemon.events())


async def test_run_once_does_one_full_pass_and_exits_0(
    config: Path, bedrock: Any, s3: Any, control: Any
) -> None:
    database = config.parent / "daemon.db"
    arn = await _track_new_job(config, bedrock, s3, control, 30)

    with running(config, "--once") as daemon:
        code = daemon.wait(timeout=60)

    assert code == 0
    assert job_column(database, arn, "status") == "COMPLETED"
    assert job_column(database, arn, "cleanup_completed_at") is not None
    assert count_records(database, arn) == 30

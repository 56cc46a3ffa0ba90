"""4. An idle daemon with many tracked jobs: its RSS and CPU over a stretch of time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from batch_poller.app import open_runtime
from batch_poller.config import load_settings
from batch_poller.emulator.control import EmulatorControl
from batch_poller.tracking import track_jobs
from bench.measure import cpu_seconds, rss_bytes
from bench.passes import _create_jobs
from bench.runtime import client, endpoints


async def bench_idle(jobs: int, seconds: float) -> dict[str, Any]:
    async with EmulatorControl(endpoints().bedrock) as control, client("bedrock") as bedrock:
        await control.reset()
        await control.configure(durations={"submitted": 10**6})
        arns = await _create_jobs(bedrock, jobs)
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as folder:
        config = Path(folder) / "config.toml"
        config.write_text(
            f'[aws]\nbedrock_endpoint_url = "{endpoints().bedrock}"\n'
            f's3_endpoint_url = "{endpoints().s3}"\n'
            f'[database]\nurl = "sqlite:///{Path(folder) / "idle.db"}"\n'
            '[http]\nport = 0\n[logging]\nformat = "json"\nlevel = "WARNING"\n'
        )
        async with open_runtime(load_settings(str(config))) as rt:
            for start in range(0, len(arns), 50):
                for arn in arns[start : start + 50]:
                    await track_jobs(rt, [arn])
        daemon = subprocess.Popen(
            [sys.executable, "-m", "batch_poller", "--config", str(config), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await asyncio.sleep(5)  # start-up and the first pass are not idling
            cpu_before, started = cpu_seconds(daemon.pid), time.monotonic()
            peak = 0
            while time.monotonic() - started < seconds:
                peak = max(peak, rss_bytes(daemon.pid))
                await asyncio.sleep(0.5)
            cpu = (cpu_seconds(daemon.pid) - cpu_before) / (time.monotonic() - started)
        finally:
            daemon.terminate()
            daemon.wait(30)
    return {
        "jobs tracked": jobs,
        "seconds": seconds,
        "peak RSS MB": round(peak / 1e6, 1),
        "CPU, % of a core": round(cpu * 100, 2),
        "batch-poller --help s": round(_help_seconds(), 2),
    }


def _help_seconds(runs: int = 3) -> float:
    """`batch-poller --help`, start to exit, the median of a few runs."""
    script = Path(sys.executable).with_name("batch-poller")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(script), "--help"], stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]

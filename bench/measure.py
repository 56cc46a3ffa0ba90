"""Wall time, peak RSS growth and CPU, measured around a piece of work."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    import os

    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    seconds: float = 0.0
    peak_rss_growth: int = 0
    cpu_seconds: float = 0.0  # this process's, every thread's


@contextmanager
def measured() -> Iterator[Sample]:
    """Times the block and samples this process's RSS every 5 ms to find its peak growth."""
    sample = Sample()
    baseline = rss_bytes()
    peak = baseline
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, rss_bytes())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    cpu = time.process_time()
    try:
        yield sample
    finally:
        sample.seconds = time.perf_counter() - started
        sample.cpu_seconds = time.process_time() - cpu
        done.set()
        watcher.join()
        sample.peak_rss_growth = max(peak, rss_bytes()) - baseline


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")

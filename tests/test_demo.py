"""README's first command: `batch-poller demo` runs the daemon on the emulator to the end."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_demo_settles_every_job_and_reports_them() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "batch_poller", "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "80"},  # a pipe's width, and tmux's by default
    )

    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "Status page: http://127.0.0.1:" in out
    summary = out[out.index("What batch-poller did") :].splitlines()
    assert max(len(line.rstrip()) for line in summary[:8]) <= 80 and "…" not in out
    for name, status in (
        ("tickets-nova", "COMPLETED"),
        ("tickets-claude", "COMPLETED"),
        ("tickets-embed", "COMPLETED"),
        ("tickets-llama", "PARTIALLY_COMPLETED"),
        ("tickets-doomed", "FAILED"),
    ):
        line = next(x for x in out.splitlines() if name in x)
        assert status in line, line
    assert "Objects left in s3://batch-poller-demo/: 1 " in out
    # The five jobs are one group, compiled once they all settled: one failed, so FAILED.
    assert "Group tickets-week-48: FAILED (5 jobs, 1 failed;" in out

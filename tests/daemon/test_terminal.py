"""What `jobs` and `show` print, read at 80 columns as in a pipe or tmux: every job told apart,
every status whole, relative times; `--wide` with every column and no microseconds."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from batch_poller.cli import main
from batch_poller.domain import BedrockStatus, JobStatus
from batch_poller.emulator.server import Endpoints
from batch_poller.rows import NewJob, Progress
from batch_poller.store import open_store
from batch_poller.terminal import ago, money
from tests.processes import write_config

ARN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/"
STATUSES = [
    ("ops-nightly-summaries-2026-11-27", JobStatus.COMPLETED, BedrockStatus.COMPLETED),
    ("ops-nightly-summaries-2026-11-28", JobStatus.IN_PROGRESS, BedrockStatus.IN_PROGRESS),
    ("ops-nightly-summaries-2026-11-29", JobStatus.RESULT_FETCH_FAILED, BedrockStatus.COMPLETED),
    ("ops-nightly", JobStatus.FAILED, BedrockStatus.EXPIRED),
    (None, JobStatus.SUBMITTED, BedrockStatus.SUBMITTED),
]


@pytest.fixture
async def config(tmp_path: Path, endpoints: Endpoints) -> Path:
    path = write_config(tmp_path, endpoints)
    store = await open_store(f"sqlite:///{tmp_path / 'daemon.db'}")
    now = datetime.now(UTC)
    for n, (name, status, bedrock) in enumerate(STATUSES):
        await store.track_job(
            NewJob(
                arn=f"{ARN}job{n:09d}",
                job_name=name,
                status=status,
                bedrock_status=bedrock,
                submitted_at=now - timedelta(hours=n + 1, microseconds=123),
                progress=Progress(processed=120, total=250) if n == 1 else Progress(),
            ),
            now,
        )
    await store.close()
    return path


async def _cli(capsys: Any, config: Path, *args: str) -> str:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["--config", str(config), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


async def test_jobs_fit_80_columns_and_tell_every_job_apart(
    capsys: Any, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")

    out = await _cli(capsys, config, "jobs")

    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    statuses = {status.value for _, status, _ in STATUSES}
    rows = [line for line in lines if statuses & set(line.split())]
    assert len(rows) == len(STATUSES)
    labels = [row.split()[0] for row in rows]
    assert len(set(labels)) == len(STATUSES)  # no two jobs look alike
    assert "ops-nightly" in labels  # a name that fits is shown whole
    for _, status, _ in STATUSES:
        assert re.search(rf"\b{status.value}\b", out), status  # never cut
    assert "120/250" in out  # a running job's progress
    assert "never" in out and "…" not in out


async def test_jobs_wide_has_every_column_to_the_second(
    capsys: Any, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")

    out = await _cli(capsys, config, "jobs", "--wide")

    for name, _, bedrock in STATUSES:
        assert bedrock.value in out
        if name:
            assert name in out
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", out)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", out)  # no microseconds


async def test_show_takes_a_job_s_name_and_suggests_near_ones(
    capsys: Any, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")

    out = await _cli(capsys, config, "show", "ops-nightly")
    assert f"{ARN}job000000003" in out and "Expired" in out
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", out)

    capsys.readouterr()
    code = await asyncio.to_thread(
        main, ["--config", str(config), "show", "ops-nightly-summaries-2026-11-30"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "no tracked job 'ops-nightly-summaries-2026-11-30'" in err
    assert "did you mean 'ops-nightly-summaries-2026-11-2" in err


def test_relative_times_and_small_costs_read_well() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert ago(None, now) == "never"
    assert ago(now - timedelta(seconds=12), now) == "12 s ago"
    assert ago(now - timedelta(minutes=3), now) == "3 min ago"
    assert ago(now - timedelta(hours=5), now) == "5 h ago"
    assert ago(now - timedelta(days=3), now) == "3 days ago"
    assert ago(now + timedelta(seconds=12), now) == "in 12 s"
    from decimal import Decimal

    assert money(Decimal("0.0000412")) == "$0.000041"
    assert money(Decimal("0.0042")) == "$0.0042"
    assert money(Decimal("12.345")) == "$12.35"
    assert money(Decimal("0")) == "$0.00"
    assert money(None) == "-"

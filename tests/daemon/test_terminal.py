"""What `jobs` and `show` print, read at 80 columns as in a pipe or tmux: every job told apart,
every status whole, relative times; `--wide` with every column and no microseconds."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from batch_poller.cli import main
from batch_poller.domain import BedrockStatus, JobStatus
from batch_poller.emulator.server import Endpoints
from batch_poller.rows import NewJob, Progress
from batch_poller.store import open_store
from batch_poller.terminal import ago, compact_money, money, short_count
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
    assert ago(now - timedelta(minutes=59), now, compact=True) == "59m ago"
    assert short_count(49_999) == "49.9k" and short_count(250_123) == "250k"
    assert short_count(1_999_999) == "1.9M" and short_count(999) == "999"
    assert compact_money(Decimal("1234.5")) == "$1.2k"
    assert compact_money(Decimal("0.0000066")) == "<$0.0001"
    assert money(Decimal("0.0000412")) == "$0.000041"
    assert money(Decimal("0.0042")) == "$0.0042"
    assert money(Decimal("12.345")) == "$12.35"
    assert money(Decimal("0")) == "$0.00"
    assert money(None) == "-"


@pytest.fixture
async def hostile(tmp_path: Path, endpoints: Endpoints) -> Path:
    """Jobs whose names and messages would act on a terminal, or on rich, if printed raw; and
    the widest realistic cells."""
    path = write_config(tmp_path, endpoints)
    store = await open_store(f"sqlite:///{tmp_path / 'daemon.db'}")
    now = datetime.now(UTC)
    names = [
        "[/red]",
        "e\x1b[2Jz",
        "[link=http://e]x",
        "a\u202eb",
        "  ",
        "nightly-analysis-2026-11-28",
    ]
    for n, name in enumerate(names):
        await store.track_job(
            NewJob(
                arn=f"{ARN}hst{n:09d}",
                job_name=name,
                status=JobStatus.RESULT_FETCH_FAILED if n == 1 else JobStatus.IN_PROGRESS,
                bedrock_status=BedrockStatus.IN_PROGRESS,
                message="bad input [/b] \x1b]0;PWN\x07",
                progress=Progress(processed=49_999, total=50_000),
                checked_at=now - timedelta(minutes=12),
            ),
            now,
        )
    await store.close()
    return path


async def test_names_and_messages_are_shown_as_they_are_never_acted_on(
    capsys: Any, hostile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")

    listed = await _cli(capsys, hostile, "jobs")
    wide = await _cli(capsys, hostile, "jobs", "--wide")
    shown = await _cli(capsys, hostile, "show", "hst000000001")

    for out in (listed, wide, shown):
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "[/red]" in listed and "[link=http://e]x" in wide  # markup shown, not rendered
    assert "e\\x1b[2Jz" in shown and "bad input [/b] \\x1b]0;PWN\\x07" in shown
    assert "hst000000001" in listed  # a name a terminal would act on is shown by the job's id
    assert "hst000000004" in listed  # so is a blank one
    lines = listed.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80 and "…" not in listed
    assert "49.9k/50.0k" in listed and "12m ago" in listed

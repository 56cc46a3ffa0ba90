"""`adopt`: jobs Bedrock has that nobody tracks are found (and only those), shown with whether
they still run, and tracked; `submit` and `adopt` as a user types them."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from batch_poller.adoption import adopt_jobs, untracked_jobs
from batch_poller.cli import main
from batch_poller.emulator.server import Endpoints
from batch_poller.runtime import Runtime
from batch_poller.supervisor import Supervisor
from batch_poller.tracking import track_jobs
from tests.daemon_fixtures import FakeClock
from tests.helpers import BUCKET, NOVA, ROLE_ARN, create_job, ensure_bucket, make_records, put_input
from tests.processes import write_config


async def make_jobs(bedrock: Any, s3: Any, *names: str) -> list[str]:
    uri = await put_input(s3, "adopt/input.jsonl", make_records(3))
    return [await create_job(bedrock, uri, name=name) for name in names]


async def test_untracked_jobs_are_found_and_only_those(
    runtime: Runtime, bedrock: Any, s3: Any, control: Any
) -> None:
    tracked, forgotten, other = await make_jobs(
        bedrock, s3, "nightly-1", "nightly-2", "adhoc-nightly-3"
    )
    await track_jobs(runtime, [tracked])
    await control.finish(other, "Completed")

    everything = await untracked_jobs(runtime)
    prefixed = await untracked_jobs(runtime, name_prefix="nightly")

    assert [job.arn for job in everything] == [forgotten, other]
    assert [job.arn for job in prefixed] == [forgotten]

    adopted = await adopt_jobs(runtime, prefixed)

    assert [(item.arn, item.new) for item in adopted] == [(forgotten, True)]
    assert await untracked_jobs(runtime, name_prefix="nightly") == []
    job = await runtime.store.get_job(forgotten)
    # Its input was not made here: not owned, never deleted by cleanup.
    assert job is not None and job.s3_folder is None


@pytest.fixture
def config(tmp_path: Path, endpoints: Endpoints) -> Path:
    return write_config(tmp_path, endpoints)


async def cli(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_adopt_dry_run_lists_and_tracks_nothing_then_adopt_tracks(
    capsys: Any, config: Path, bedrock: Any, s3: Any
) -> None:
    (arn,) = await make_jobs(bedrock, s3, "forgotten-job")

    code, out, err = await cli(capsys, config, "adopt", "--dry-run")
    assert code == 0, err
    assert f"{arn}  forgotten-job  Submitted (RUNNING)" in out
    assert "1 untracked jobs, 1 running or waiting to run: 1 would be tracked" in out
    assert not (config.parent / "daemon.db").exists()  # a dry run creates nothing

    code, out, _ = await cli(capsys, config, "adopt", "--json")
    assert code == 0
    assert [json.loads(line)["arn"] for line in out.splitlines()] == [arn]

    code, out, _ = await cli(capsys, config, "adopt")
    assert "0 untracked jobs" in out


async def test_adopt_refuses_a_date_it_cannot_read(capsys: Any, config: Path) -> None:
    code, _, err = await cli(capsys, config, "adopt", "--since", "last tuesday")

    assert code != 0
    assert "--since 'last tuesday': give a date or time" in err


async def test_submit_from_the_command_line_twice(
    capsys: Any, config: Path, s3: Any, tmp_path: Path
) -> None:
    await ensure_bucket(s3, BUCKET)
    source = tmp_path / "prompts.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in make_records(120)))
    args = ("submit", str(source), "--model", NOVA, "--role", ROLE_ARN)
    args += ("--bucket", f"s3://{BUCKET}/cli/", "--tag", "team=search")

    code, out, _ = await cli(capsys, config, *args)
    again = await cli(capsys, config, *args)

    assert code == 0 and ": submitted, 120 records, arn:aws:bedrock:" in out
    assert again[0] == 0 and ": already submitted, 120 records" in again[1]
    code, out, _ = await cli(capsys, config, "jobs", "--json")
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--tag", "novalue"), "--tag 'novalue': give it as key=value"),
        (("--tag", "a=1", "--tag", "a=2"), "--tag 'a' is given twice"),
        (("--timeout-hours", "500"), "timeout of 500 hours"),
    ],
)
async def test_submit_refuses_bad_options_in_one_line(
    capsys: Any, config: Path, tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    source = tmp_path / "prompts.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in make_records(120)))
    args = ("submit", str(source), "--model", NOVA, "--role", ROLE_ARN)

    code, _, err = await cli(capsys, config, *args, "--bucket", f"s3://{BUCKET}/x/", *extra)

    assert code != 0
    assert message in err
    assert len(err.strip().splitlines()) == 1


async def test_the_daemon_warns_once_a_day_of_jobs_running_untracked(
    runtime: Runtime, supervisor: Supervisor, clock: FakeClock, bedrock: Any, s3: Any
) -> None:
    await make_jobs(bedrock, s3, "forgotten-job")
    runtime.settings = runtime.settings.model_copy(
        update={"poller": runtime.settings.poller.model_copy(update={"warn_untracked": True})}
    )

    async def warnings() -> list[dict[str, Any]]:
        with capture_logs() as logged:
            await supervisor.run_pass()
        return [entry for entry in logged if entry["event"] == "untracked_jobs_running"]

    first = await warnings()
    same_day = await warnings()
    clock.current += timedelta(days=1)
    next_day = await warnings()

    assert [(entry["count"], entry["jobs"]) for entry in first] == [(1, ["forgotten-job"])]
    assert same_day == []
    assert len(next_day) == 1


async def test_adopt_says_in_one_line_when_bedrock_refuses_the_listing(
    capsys: Any, config: Path, control: Any
) -> None:
    await control.configure(
        faults={
            "permanent_error": "AccessDeniedException",
            "operations": ["ListModelInvocationJobs"],
        }
    )

    code, _, err = await cli(capsys, config, "adopt", "--dry-run")

    assert code == 1
    assert err.startswith("batch-poller: ListModelInvocationJobs: AccessDeniedException")
    assert len(err.strip().splitlines()) == 1
    empty = await cli(capsys, config, "adopt", "--name-prefix", "")
    assert empty[0] != 0 and "--name-prefix ''" in empty[2]

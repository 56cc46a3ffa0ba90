"""The CLI's commands as a user types them, against the emulator and a SQLite file."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from batch_poller.app import open_runtime
from batch_poller.cli import _parser, main
from batch_poller.config import load_settings
from batch_poller.domain import JobStatus
from batch_poller.emulator.server import Endpoints
from batch_poller.store.tables import SCHEMA_VERSION
from batch_poller.views import TABLE_COLUMNS
from tests.helpers import BUCKET, create_job, lease_to_another, list_keys, make_records, put_input
from tests.processes import write_config

UNKNOWN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefabcdef"


@pytest.fixture
def config(tmp_path: Path, endpoints: Endpoints) -> Path:
    return write_config(tmp_path, endpoints, results={"retry_base_seconds": 0})


async def cli(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
async def job(bedrock: Any, s3: Any) -> str:
    uri = await put_input(s3, "in/job/input.jsonl", make_records(6))
    return await create_job(bedrock, uri, name="cli-job", output_uri=f"s3://{BUCKET}/out/")


async def test_track_then_track_again(capsys: Any, config: Path, job: str) -> None:
    first = await cli(capsys, config, "track", job, "--input-prefix", f"s3://{BUCKET}/in/job/")
    again = await cli(capsys, config, "track", job)

    assert first[0] == 0 and f"{job}: now tracked (Submitted at Bedrock)" in first[1]
    assert again[0] == 0 and f"{job}: already tracked" in again[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((UNKNOWN,), "unknown job: Bedrock has no job"),
        (("arn:aws:bedrock:us-east-1:123:job/x",), "not a Bedrock batch job ARN"),
        ((UNKNOWN, UNKNOWN, "--input-prefix", "s3://b/x/"), "give a single ARN"),
        ((UNKNOWN, "--input-prefix", f"s3://{BUCKET}/"), "bucket root"),
        ((UNKNOWN, "--input-prefix", f"s3://{BUCKET}/folder"), "'/' boundary"),
    ],
)
async def test_track_refuses_with_a_clear_message(
    capsys: Any, config: Path, endpoints: Any, args: tuple[str, ...], message: str
) -> None:
    code, _out, err = await cli(capsys, config, "track", *args)

    assert code == 1
    assert message in err
    assert "Traceback" not in err


async def test_jobs_and_show_after_a_run(
    capsys: Any, config: Path, control: Any, job: str, monkeypatch: Any
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    await cli(capsys, config, "track", job)
    await control.finish(job, "Completed")
    assert (await cli(capsys, config, "run", "--once"))[0] == 0

    code, out, _ = await cli(capsys, config, "jobs", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 1
    assert set(rows[0]) == set(TABLE_COLUMNS)
    assert rows[0]["status"] == "COMPLETED" and rows[0]["total_records"] == 6
    assert rows[0]["cleanup"] == "done"
    assert rows[0]["cost"] is None  # the config prices no model: unknown, not zero

    code, out, _ = await cli(capsys, config, "show", job.rsplit("/", 1)[-1], "--json")
    shown = json.loads(out)
    assert code == 0
    assert shown["batch_job_arn"] == job
    assert (shown["total_records"], shown["success_records"], shown["error_records"]) == (6, 6, 0)

    code, out, _ = await cli(capsys, config, "jobs")
    assert code == 0 and "cli-job" in out and "COMPLETED" in out


async def test_reading_a_database_that_is_not_there_says_so_and_creates_nothing(
    capsys: Any, config: Path, endpoints: Any
) -> None:
    database = config.parent / "daemon.db"
    for command in (("show", "abcdefabcdef"), ("jobs",)):
        code, out, err = await cli(capsys, config, *command)
        assert code == 1 and out == ""
        assert f"no database at {database}: nothing has been tracked" in err
    assert not database.exists()


async def test_show_and_cleanup_of_an_unknown_job_fail_clearly(
    capsys: Any, config: Path, endpoints: Any
) -> None:
    await cli(capsys, config, "db", "upgrade")
    for command in ("show", "cleanup"):
        code, _, err = await cli(capsys, config, command, "abcdefabcdef")
        assert code == 1
        assert "no tracked job 'abcdefabcdef' (by ARN, id or name)" in err


async def test_jobs_refuses_an_unknown_status(capsys: Any, config: Path, endpoints: Any) -> None:
    code, _, err = await cli(capsys, config, "jobs", "--status", "DONE")

    assert code == 1 and "unknown status 'DONE'" in err


async def test_cleanup_command_waits_for_stored_results_then_deletes(
    capsys: Any, config: Path, control: Any, s3: Any, job: str, monkeypatch: Any
) -> None:
    await cli(capsys, config, "track", job, "--input-prefix", f"s3://{BUCKET}/in/job/")
    refused = await cli(capsys, config, "cleanup", job)
    assert refused[0] == 1 and "its results are not stored yet" in refused[2]

    await control.finish(job, "Completed")
    monkeypatch.setenv("BATCH_POLLER_CLEANUP__ENABLED", "false")
    await cli(capsys, config, "run", "--once")
    assert len(await list_keys(s3, "in/job/")) == 1

    code, out, _ = await cli(capsys, config, "cleanup", job)
    again = await cli(capsys, config, "cleanup", job)

    assert code == 0 and "cleaned" in out and "bytes freed" in out
    assert await list_keys(s3, "in/job/") == [] and await list_keys(s3, "out/") == []
    assert again[0] == 0 and "already cleaned up" in again[1]


async def test_process_completed_retries_failed_fetches(
    capsys: Any, config: Path, control: Any, s3: Any, job: str
) -> None:
    await cli(capsys, config, "track", job)
    await control.finish(job, "Completed")
    folder = f"out/{job.rsplit('/', 1)[-1]}/"
    manifest = await (await s3.get_object(Bucket=BUCKET, Key=folder + "manifest.json.out"))[
        "Body"
    ].read()
    await s3.delete_object(Bucket=BUCKET, Key=folder + "manifest.json.out")
    await cli(capsys, config, "run", "--once")
    failed = json.loads((await cli(capsys, config, "show", job, "--json"))[1])
    assert failed["status"] == "RESULT_FETCH_FAILED" and failed["results_fetch_attempts"] == 3

    await s3.put_object(Bucket=BUCKET, Key=folder + "manifest.json.out", Body=manifest)
    code, out, _ = await cli(capsys, config, "process-completed", "--json")

    report = json.loads(out)
    assert code == 0 and report["fetched"] == 1 and report["cleaned"] == 1
    done = json.loads((await cli(capsys, config, "show", job, "--json"))[1])
    assert done["status"] == "COMPLETED"


async def test_process_completed_names_the_jobs_another_process_holds(
    capsys: Any, config: Path, control: Any, job: str
) -> None:
    await cli(capsys, config, "track", job)
    await control.finish(job, "Completed")
    async with open_runtime(load_settings(str(config))) as rt:
        now = rt.clock.now()
        owner = await lease_to_another(rt.store, job, now)

    code, out, err = await cli(capsys, config, "process-completed", "--json")

    assert code == 0 and json.loads(out)["jobs"] == 0 and json.loads(out)["held"] == 1
    assert f"{job} left alone: leased by {owner} until 20" in err


async def test_db_upgrade_reports_the_version(capsys: Any, config: Path, endpoints: Any) -> None:
    code, out, _ = await cli(capsys, config, "db", "upgrade")

    assert code == 0 and out.strip() == f"database schema at version {SCHEMA_VERSION}"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[poller\ninterval_seconds = 5", "is not valid TOML"),
        ("[poller]\ninterval = 5", "unknown setting 'poller.interval'"),
        ("[poller]\nmax_concurrent_jobs = 0", "setting poller.max_concurrent_jobs=0 is invalid"),
    ],
)
async def test_a_bad_config_exits_78_with_one_line(
    capsys: Any, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)

    code, _, err = await cli(capsys, path, "jobs")

    assert code == 78
    assert message in err and str(path) in err
    assert len(err.strip().splitlines()) == 1


def test_every_option_of_every_command_says_what_it_does() -> None:
    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for command, sub in action.choices.items():
                    walk(sub, command)
            elif not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{name} {action.option_strings or action.dest}")

    walk(_parser(), "batch-poller")

    assert missing == []


def test_jobs_help_lists_the_statuses(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        main(["jobs", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ", ".join(status.value for status in JobStatus) in text


@pytest.mark.parametrize(
    "command",
    [("cleanup", "x"), ("process-completed",), ("groups",), ("hooks", "failed"), ("export", "x")],
)
async def test_only_tracking_creates_a_database(
    capsys: Any, config: Path, endpoints: Any, command: tuple[str, ...]
) -> None:
    database = config.parent / "daemon.db"

    code, _, err = await cli(capsys, config, *command)

    assert code == 1 and f"no database at {database}" in err
    assert not database.exists()


async def test_a_database_that_does_not_answer_is_one_line(capsys: Any, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "postgresql://poller:pw@127.0.0.1:9/jobs"\n')

    code, out, err = await cli(capsys, config, "jobs")

    assert code == 1 and out == "" and "Traceback" not in err
    assert err.startswith("batch-poller: cannot open the database postgresql://poller:***@")
    assert err.count("\n") == 1

"""`track --group`, `groups`, `export --group/--record-id/--format parquet` and `hooks` as a user
types them, against the emulator and a SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from batch_poller.emulator.server import Endpoints
from tests.daemon.test_cli import cli
from tests.helpers import BUCKET, create_job, make_records, put_input
from tests.processes import query, write_config


@pytest.fixture
def config(tmp_path: Path, endpoints: Endpoints) -> Path:
    path = write_config(tmp_path, endpoints)
    price = '[pricing."amazon.nova-lite-v1:0"]\ninput_per_1k = 0.03\noutput_per_1k = 0.12\n'
    path.write_text(path.read_text() + "\n" + price)
    return path


async def _job(bedrock: Any, s3: Any, name: str, records: int) -> str:
    uri = await put_input(s3, f"{name}/input.jsonl", make_records(records, prefix=f"{name}-"))
    arn: str = await create_job(bedrock, uri, name=name, output_uri=f"s3://{BUCKET}/out/")
    return arn


async def test_a_group_from_the_command_line(
    capsys: Any, config: Path, tmp_path: Path, bedrock: Any, s3: Any, control: Any
) -> None:
    first, second = await _job(bedrock, s3, "one", 4), await _job(bedrock, s3, "two", 5)
    code, out, _ = await cli(capsys, config, "track", first, "--group", "report-7")
    assert code == 0 and "group report-7: 1 jobs, OPEN" in out
    code, out, _ = await cli(capsys, config, "track", second, "--group", "report-7")
    assert code == 0 and "group report-7: 2 jobs, OPEN" in out
    for arn in (first, second):
        await control.finish(arn, "Completed")
    assert (await cli(capsys, config, "process-completed"))[0] == 0

    code, out, _ = await cli(capsys, config, "groups", "seal", "report-7")
    assert code == 0 and "report-7: sealed and compiled, COMPLETED" in out
    code, out, _ = await cli(capsys, config, "groups", "--json")
    [listed] = [json.loads(line) for line in out.splitlines()]
    assert (listed["name"], listed["status"], listed["jobs"]) == ("report-7", "COMPLETED", 2)
    assert listed["records"] == {"total": 9, "ok": 9, "error": 0}
    code, out, _ = await cli(capsys, config, "groups", "show", "report-7", "--json")
    shown = json.loads(out)
    assert code == 0 and sorted(m["batch_job_arn"] for m in shown["members"]) == sorted(
        [first, second]
    )
    code, out, _ = await cli(capsys, config, "groups", "show", "report-7")
    assert code == 0 and "report-7" in out and "9 (9 ok, 0 errors)" in out

    code, out, _ = await cli(capsys, config, "export", "--group", "report-7")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 9
    assert {line["batch_job_arn"] for line in lines} == {first, second}
    code, out, _ = await cli(capsys, config, "export", "--record-id", lines[0]["record_id"])
    [found] = [json.loads(line) for line in out.splitlines()]
    assert found["batch_job_arn"] == lines[0]["batch_job_arn"]

    target = tmp_path / "report.parquet"
    code, _, err = await cli(
        capsys, config, "export", "--group", "report-7", "--format", "parquet", "-o", str(target)
    )
    assert code == 0 and f"group report-7: 9 records written to {target}" in err
    table = pq.read_table(target)
    assert table.num_rows == 9
    assert sorted(table.column("record_id").to_pylist()) == sorted(r["record_id"] for r in lines)
    assert table.column("input_tokens").type == "int64"
    assert str(table.column("cost").type) == "decimal128(18, 8)"
    ids, amounts = table.column("record_id").to_pylist(), table.column("cost").to_pylist()
    costs = dict(zip(ids, amounts, strict=True))
    assert costs == {r["record_id"]: Decimal(r["cost"]) for r in lines}
    assert sum(costs.values()) == Decimal(listed["cost"]) > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("groups", "show", "nope"), "no group 'nope'"),
        (("groups", "seal", "nope"), "no group 'nope'"),
        (("groups", "show"), "groups show needs the group's NAME"),
        (("groups", "--status", "late"), "unknown group status 'late'"),
        (("export", "--group", "nope"), "no group 'nope'"),
        (("export",), "export takes one of: a JOB, --group NAME, --record-id ID"),
        (("export", "abcdefabcdef", "--group", "g"), "export takes one of"),
        (("export", "--record-id", "r", "--format", "parquet"), "name it with -o FILE"),
        (("hooks", "retry"), "hooks retry takes delivery numbers"),
        (("hooks", "retry", "--all"), "no dead letter of a configured hook to send again"),
        (("hooks", "retry", "--all", "--hook", "nope"), "no hook 'nope' in the configuration"),
        (
            (
                "track",
                "--seal",
                "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefabcdef",
            ),
            "name the group",
        ),
    ],
)
async def test_group_and_hook_commands_refuse_with_a_clear_message(
    capsys: Any, config: Path, bedrock: Any, s3: Any, args: tuple[str, ...], message: str
) -> None:
    await _job(bedrock, s3, "present", 1)
    (config.parent / "daemon.db").touch()
    assert (await cli(capsys, config, "db", "upgrade"))[0] == 0
    code, _, err = await cli(capsys, config, *args)
    assert code == 1 and message in err, err
    assert len(err.strip().splitlines()) == 1


async def test_hooks_failed_lists_nothing_when_nothing_failed(capsys: Any, config: Path) -> None:
    assert (await cli(capsys, config, "db", "upgrade"))[0] == 0
    code, out, _ = await cli(capsys, config, "hooks", "failed", "--json")
    assert code == 0 and out == ""
    code, out, _ = await cli(capsys, config, "hooks", "failed")
    assert code == 0 and "0 dead letters" in out


async def test_events_written_by_commands_are_queued_for_the_configured_hooks(
    capsys: Any, config: Path, bedrock: Any, s3: Any, control: Any
) -> None:
    """A group sealed, and so compiled, by `groups seal` (no daemon running) is delivered by
    the daemon later like any other event: its delivery is written with it."""
    _add_webhook(config)
    arn = await _job(bedrock, s3, "sealed-later", 2)
    assert (await cli(capsys, config, "track", arn, "--group", "late"))[0] == 0
    await control.finish(arn, "Completed")
    assert (await cli(capsys, config, "process-completed"))[0] == 0
    assert (await cli(capsys, config, "groups", "seal", "late"))[0] == 0

    queued = query(
        config.parent / "daemon.db",
        "SELECT e.type, d.hook, d.state FROM hook_deliveries d JOIN events e ON e.id = d.event "
        "ORDER BY d.id",
    )
    assert queued == [("job.settled", "app", "pending"), ("group.completed", "app", "pending")]


def _add_webhook(config: Path) -> None:
    webhook = '[[hooks.webhook]]\nname = "app"\nurl = "http://127.0.0.1:9/"\nsecret = "s"\n'
    config.write_text(config.read_text() + "\n" + webhook)


async def test_an_export_never_replaces_what_is_not_a_regular_file(
    capsys: Any, config: Path, tmp_path: Path, bedrock: Any, s3: Any, control: Any
) -> None:
    arn = await _job(bedrock, s3, "guarded", 3)
    assert (await cli(capsys, config, "track", arn))[0] == 0
    await control.finish(arn, "Completed")
    assert (await cli(capsys, config, "process-completed"))[0] == 0
    target = tmp_path / "kept.txt"
    target.write_text("mine")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    for output, words in (
        (str(link), "a symbolic link, which the export would replace"),
        (str(fifo), "not a regular file"),
        (str(tmp_path), "not a regular file"),
        ("", "names no file"),
        (f"{tmp_path}/..", "names no file"),
    ):
        code, _, err = await cli(capsys, config, "export", arn, "-o", output)
        assert code == 1 and words in err, (output, err)
    assert target.read_text() == "mine" and link.is_symlink() and fifo.is_fifo()
    # A regular file is replaced whole.
    code, _, _ = await cli(capsys, config, "export", arn, "-o", str(target))
    assert code == 0 and len(target.read_text().splitlines()) == 3


def test_an_export_into_a_closed_pipe_ends_quietly(config: Path) -> None:
    """`export JOB | head -1`: the reader leaving is no error worth a traceback."""
    script = (
        "import sys; from batch_poller.cli import main; "
        "sys.exit(main(['--config', sys.argv[1], 'export', '--record-id', 'x']))"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", script, str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None
    reader.stdout.close()
    _, err = reader.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err


async def test_a_job_waiting_for_its_group_says_so(
    capsys: Any, config: Path, bedrock: Any, s3: Any, control: Any
) -> None:
    arn = await _job(bedrock, s3, "waiting", 2)
    assert (await cli(capsys, config, "track", arn, "--group", "open-one"))[0] == 0
    await control.finish(arn, "Completed")
    assert (await cli(capsys, config, "process-completed"))[0] == 0

    code, _, err = await cli(capsys, config, "cleanup", arn)
    assert code == 1 and "waits for its group 'open-one' to be compiled" in err
    assert "groups seal open-one" in err
    code, out, err = await cli(capsys, config, "export", "--group", "open-one")
    assert code == 0 and len(out.splitlines()) == 2
    assert "group open-one is OPEN, not compiled yet" in err
    code, out, _ = await cli(capsys, config, "groups", "show", "open-one")
    assert code == 0 and "None" not in out

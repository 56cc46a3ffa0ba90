"""Completion hooks from a real daemon process to a real HTTP receiver and a real command:
signed events arrive once each, failures are retried and dead-lettered, a SIGKILL loses no
event, and a slow receiver holds up no ingestion."""

from __future__ import annotations

import json
import signal
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from batch_poller.emulator.server import Endpoints
from batch_poller.hooks.signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.helpers import BUCKET, create_job, make_records, put_input
from tests.processes import (
    count_records,
    job_column,
    query,
    run_command,
    running,
    wait_until,
    write_config,
)
from tests.service.hook_receiver import Receiver, free_port, receiving

SECRET = "whsec-test-0123456789"
BIG = 20_000


def _config(tmp_path: Path, endpoints: Endpoints, *hooks: str, **hook_settings: Any) -> Path:
    """The daemon's config with [hooks] settings and the given [[hooks.*]] tables."""
    settings = {"poll_seconds": 0.2, "retry_base_seconds": 0.05, **hook_settings}
    config = write_config(tmp_path, endpoints, hooks=settings, results={"batch_size": 50})
    config.write_text(config.read_text() + "\n" + "\n".join(hooks))
    return config


def _webhook(url: str, name: str = "app", **extra: Any) -> str:
    lines = ["[[hooks.webhook]]", f'name = "{name}"', f'url = "{url}"', f'secret = "{SECRET}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


async def _job(bedrock: Any, s3: Any, name: str, records: int = 5) -> str:
    uri = await put_input(s3, f"{name}/input.jsonl", make_records(records, prefix=name))
    arn: str = await create_job(bedrock, uri, name=name, output_uri=f"s3://{BUCKET}/out/")
    return arn


def _track(config: Path, *args: str) -> None:
    result = run_command("--config", str(config), "track", *args)
    assert result.returncode == 0, result.stderr


def _read(url: str) -> str:
    """A plain GET, as a scraper makes it (the daemon runs in another process)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
    return text


def _deliveries(database: Path) -> list[tuple[Any, ...]]:
    return query(
        database,
        "SELECT e.type, d.hook, d.state, d.attempts FROM hook_deliveries d "
        "JOIN events e ON e.id = d.event ORDER BY d.id",
    )


async def test_signed_events_arrive_once_each(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    database = tmp_path / "daemon.db"
    with receiving(Receiver(free_port())) as receiver:
        config = _config(tmp_path, endpoints, _webhook(receiver.url))
        first, second = await _job(bedrock, s3, "first"), await _job(bedrock, s3, "second")
        _track(config, first, "--group", "analysis-1")
        _track(config, second, "--group", "analysis-1", "--seal")
        with running(config) as daemon:
            await control.finish(first, "Completed")
            await control.finish(second, "Completed")
            daemon.wait_for(lambda: len(receiver.events()) >= 3, "three events")
            wait_until(
                lambda: {row[2] for row in _deliveries(database)} == {"delivered"},
                "every delivery recorded",
                daemon,
            )
            [url] = [e["url"] for e in daemon.events() if e.get("event") == "http_listening"]
            metrics = _read(f"{url}/metrics")

    assert 'batch_poller_hook_deliveries_by_state{hook="app",state="delivered"} 3.0' in metrics
    assert 'batch_poller_hook_deliveries_total{hook="app",result="delivered"} 3.0' in metrics
    [compiled] = [e for e in daemon.events() if e.get("event") == "group_compiled"]
    assert (compiled["group"], compiled["status"], compiled["records"]) == (
        "analysis-1",
        "COMPLETED",
        10,
    )

    events = receiver.events()
    assert Counter(event["type"] for event in events) == {"job.settled": 2, "group.completed": 1}
    assert len({event["id"] for event in events}) == 3  # each once
    assert events[-1]["type"] == "group.completed"  # compiled with the last job's settle
    assert events[-1]["group"]["records"] == {"total": 10, "ok": 10, "error": 0}
    now = time.time()
    for request in receiver.received:
        headers = {key.lower(): value for key, value in request.headers.items()}
        event_id = headers[ID_HEADER.lower()]
        assert event_id == request.event["id"]
        assert verify(
            SECRET,
            event_id,
            headers[TIMESTAMP_HEADER.lower()],
            request.body,
            headers[SIGNATURE_HEADER.lower()],
            now,
        )
        assert not verify(
            "another secret",
            event_id,
            headers[TIMESTAMP_HEADER.lower()],
            request.body,
            headers[SIGNATURE_HEADER.lower()],
            now,
        )
    assert [row[3] for row in _deliveries(database)] == [1, 1, 1]


async def test_a_receiver_failing_three_times_gets_the_event_on_the_fourth_try(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    database = tmp_path / "daemon.db"
    with receiving(Receiver(free_port(), script=[500, 503, 500, 200])) as receiver:
        config = _config(tmp_path, endpoints, _webhook(receiver.url, events=["job.settled"]))
        arn = await _job(bedrock, s3, "flaky")
        _track(config, arn)
        with running(config) as daemon:
            await control.finish(arn, "Completed")
            daemon.wait_for(lambda: receiver.events(answered=200), "the delivery")
            wait_until(lambda: _deliveries(database)[0][2] == "delivered", "its record", daemon)

    answered = [(r.event["id"], r.answered) for r in receiver.received]
    assert [status for _, status in answered] == [500, 503, 500, 200]
    assert len({event_id for event_id, _ in answered}) == 1  # the same event every time
    assert _deliveries(database) == [("job.settled", "app", "delivered", 4)]
    retried = [e for e in daemon.events() if e.get("event") == "hook_delivery_failed"]
    assert [e["error"][:8] for e in retried] == ["HTTP 500", "HTTP 503", "HTTP 500"]


async def test_a_receiver_down_for_the_whole_budget_leaves_a_dead_letter_that_retry_sends(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    database = tmp_path / "daemon.db"
    receiver = Receiver(free_port())  # nothing listens there yet
    config = _config(tmp_path, endpoints, _webhook(receiver.url), max_attempts=3)
    arn = await _job(bedrock, s3, "unheard")
    _track(config, arn)
    with running(config) as daemon:
        await control.finish(arn, "Completed")
        dead = ["dead"]
        wait_until(lambda: [r[2] for r in _deliveries(database)] == dead, "a dead letter", daemon)

        failed = run_command("--config", str(config), "hooks", "failed", "--json")
        assert failed.returncode == 0, failed.stderr
        [letter] = [json.loads(line) for line in failed.stdout.splitlines()]
        assert (letter["hook"], letter["type"], letter["attempts"]) == ("app", "job.settled", 3)
        assert letter["batch_job_arn"] == arn and letter["last_error"]
        nothing = run_command("--config", str(config), "hooks", "retry", "12345")
        assert nothing.returncode == 1 and "no dead letter" in nothing.stderr
        huge = run_command("--config", str(config), "hooks", "retry", "9" * 30)
        assert huge.returncode == 2 and "is not a delivery number" in huge.stderr

        with receiving(receiver):
            number = str(letter["delivery"])
            retried = run_command("--config", str(config), "hooks", "retry", number)
            assert retried.returncode == 0, retried.stderr
            daemon.wait_for(lambda: receiver.events(), "the event sent again")
            wait_until(lambda: _deliveries(database)[0][2] == "delivered", "its record", daemon)
    assert [event["id"] for event in receiver.events()] == [letter["event_id"]]
    dead = [e for e in daemon.events() if e.get("event") == "hook_dead_letter"]
    assert len(dead) == 1 and dead[0]["attempts"] == 3


async def test_a_sigkill_after_the_commit_still_delivers_after_restart(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    """The group's last job and its compile are committed, the delivery is on its way (the
    receiver holds it), and the daemon is killed: the restart compiles nothing again and
    sends the event again (at least once)."""
    database = tmp_path / "daemon.db"
    receiver = Receiver(free_port())
    receiver.hold.clear()
    with receiving(receiver):
        config = _config(tmp_path, endpoints, _webhook(receiver.url, events=["group.completed"]))
        arn = await _job(bedrock, s3, "killed")
        _track(config, arn, "--group", "g-kill", "--seal")
        with running(config) as first:
            await control.finish(arn, "Completed")
            first.wait_for(lambda: receiver.holding == 1, "the delivery on its way")
            first.signal(signal.SIGKILL)
            first.wait(timeout=10)
        assert query(database, "SELECT status FROM job_groups") == [("COMPLETED",)]
        assert _deliveries(database)[0][2] == "pending"
        receiver.hold.set()
        with running(config) as second:
            second.wait_for(
                lambda: _deliveries(database)[0][2] == "delivered", "the delivery after restart"
            )
    ids = [event["id"] for event in receiver.events()]
    assert len(ids) >= 1 and len(set(ids)) == 1
    compiles = query(database, "SELECT count(*) FROM events WHERE type = 'group.completed'")
    assert compiles == [(1,)]


async def test_a_sigkill_before_the_last_jobs_records_are_all_stored_compiles_once_after_restart(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    database = tmp_path / "daemon.db"
    config = _config(tmp_path, endpoints)
    small, big = await _job(bedrock, s3, "small"), await _job(bedrock, s3, "big", BIG)
    _track(config, small, big, "--group", "g-big", "--seal")
    await control.finish(small, "Completed")
    await control.finish(big, "Completed")
    with running(config) as first:
        first.wait_for(lambda: count_records(database, big) > 0, "the big job's first records")
        first.signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert 0 < count_records(database, big) < BIG, "the kill must land in the middle"
    assert job_column(database, big, "results_fetched_at") is None
    assert query(database, "SELECT status, compiled_at FROM job_groups") == [("SEALED", None)]

    with running(config) as second:
        second.wait_for(lambda: job_column(database, big, "cleanup_completed_at"), "cleanup")
    assert count_records(database, big) == BIG
    [(status, total)] = query(database, "SELECT status, total_records FROM job_groups")
    assert (status, total) == ("COMPLETED", BIG + 5)
    compiles = query(database, "SELECT count(*) FROM events WHERE type = 'group.completed'")
    assert compiles == [(1,)]


async def test_a_slow_receiver_holds_up_no_other_jobs_ingestion(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    database = tmp_path / "daemon.db"
    receiver = Receiver(free_port(), hold_seconds=30.0)
    receiver.hold.clear()
    with receiving(receiver):
        config = _config(tmp_path, endpoints, _webhook(receiver.url, timeout_seconds=60))
        first, second = await _job(bedrock, s3, "first"), await _job(bedrock, s3, "second", 300)
        _track(config, first)
        _track(config, second)
        with running(config) as daemon:
            await control.finish(first, "Completed")
            daemon.wait_for(lambda: receiver.holding == 1, "the first event held by the receiver")
            await control.finish(second, "Completed")
            daemon.wait_for(
                lambda: job_column(database, second, "cleanup_completed_at"),
                "the second job stored and cleaned",
            )
            # Still held: the second job went through while the first event's POST waited.
            assert receiver.holding == 1 and receiver.received == []
            assert count_records(database, second) == 300
            receiver.hold.set()
            daemon.wait_for(lambda: len(receiver.events()) == 2, "both events")


async def test_a_command_hook_gets_the_event_on_stdin_and_its_fields_in_the_environment(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    database = tmp_path / "daemon.db"
    out = tmp_path / "hook-out"
    out.mkdir()
    script = (
        "import os, sys, json, pathlib\n"
        f"folder = pathlib.Path({str(out)!r})\n"
        "event_id = os.environ['BATCH_POLLER_EVENT_ID']\n"
        "(folder / (event_id + '.json')).write_bytes(sys.stdin.buffer.read())\n"
        "keys = ('EVENT_TYPE', 'JOB_ARN', 'JOB_ID', 'GROUP', 'STATUS')\n"
        "env = {k: os.environ.get('BATCH_POLLER_' + k) for k in keys}\n"
        "(folder / (event_id + '.env')).write_text(json.dumps(env))\n"
    )
    hook = "\n".join(
        [
            "[[hooks.command]]",
            'name = "script"',
            f"argv = {json.dumps([sys.executable, '-c', script])}",
            'events = ["job.settled"]',
        ]
    )
    config = _config(tmp_path, endpoints, hook)
    arn = await _job(bedrock, s3, "commanded")
    _track(config, arn, "--group", "g-cmd")
    with running(config) as daemon:
        await control.finish(arn, "Completed")
        daemon.wait_for(lambda: len(list(out.glob("*.env"))) == 1, "the command's run")
        wait_until(lambda: _deliveries(database)[0][2] == "delivered", "its record", daemon)
    [body] = list(out.glob("*.json"))
    [env_file] = list(out.glob("*.env"))
    event = json.loads(body.read_bytes())
    env = json.loads(env_file.read_text())
    assert event["type"] == "job.settled" and event["job"]["batch_job_arn"] == arn
    assert body.name == f"{event['id']}.json"
    assert env == {
        "EVENT_TYPE": "job.settled",
        "JOB_ARN": arn,
        "JOB_ID": arn.rsplit("/", 1)[1],
        "GROUP": "g-cmd",
        "STATUS": "COMPLETED",
    }


async def test_a_hook_added_by_a_reload_gets_the_events_written_after_it(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    database = tmp_path / "daemon.db"
    with receiving(Receiver(free_port())) as receiver:
        config = _config(tmp_path, endpoints)
        before, after = await _job(bedrock, s3, "before"), await _job(bedrock, s3, "after")
        _track(config, before)
        _track(config, after)
        with running(config) as daemon:
            await control.finish(before, "Completed")
            daemon.wait_for(lambda: job_column(database, before, "cleanup_completed_at"), "one")
            config.write_text(config.read_text() + "\n" + _webhook(receiver.url))
            daemon.signal(signal.SIGHUP)
            daemon.wait_for(
                lambda: any(e.get("event") == "reloaded" for e in daemon.events()), "the reload"
            )
            await control.finish(after, "Completed")
            daemon.wait_for(lambda: receiver.events(), "the event of the job after the reload")
            wait_until(lambda: _deliveries(database)[-1][2] == "delivered", "its record", daemon)
    # The event written before the hook existed was not queued for it.
    assert [e["job"]["batch_job_arn"] for e in receiver.events()] == [after]
    assert [row[:3] for row in _deliveries(database)] == [("job.settled", "app", "delivered")]


async def test_run_once_delivers_what_it_settled_before_it_exits(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    database = tmp_path / "daemon.db"
    with receiving(Receiver(free_port())) as receiver:
        config = _config(tmp_path, endpoints, _webhook(receiver.url))
        arn = await _job(bedrock, s3, "cron")
        _track(config, arn, "--group", "nightly", "--seal")
        await control.finish(arn, "Completed")
        once = run_command("--config", str(config), "run", "--once")
        assert once.returncode == 0, once.stderr[-2000:]
        # Answered before the process exited: nothing waits for a later run.
        assert sorted(e["type"] for e in receiver.events()) == ["group.completed", "job.settled"]
    assert {row[2] for row in _deliveries(database)} == {"delivered"}


async def test_a_hook_renamed_by_a_reload_leaves_its_events_in_sight_and_retry_moves_them(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, control: Any
) -> None:
    database = tmp_path / "daemon.db"
    with receiving(Receiver(free_port(), script=[500])) as receiver:
        config = _config(tmp_path, endpoints, _webhook(receiver.url), retry_base_seconds=3600)
        arn = await _job(bedrock, s3, "renamed")
        _track(config, arn)
        with running(config) as daemon:
            await control.finish(arn, "Completed")
            # Failed once; its next attempt is far off: pending for hook "app".
            wait_until(
                lambda: _deliveries(database) == [("job.settled", "app", "pending", 1)],
                "a failed attempt",
                daemon,
            )
            config.write_text(config.read_text().replace('name = "app"', 'name = "app2"'))
            daemon.signal(signal.SIGHUP)
            daemon.wait_for(
                lambda: any(e.get("event") == "hook_deliveries_stranded" for e in daemon.events()),
                "the stranded delivery said",
            )
            assert _deliveries(database) == [("job.settled", "app", "dead", 1)]
            failed = run_command("--config", str(config), "hooks", "failed", "--json")
            [letter] = [json.loads(line) for line in failed.stdout.splitlines()]
            assert "no longer configured" in letter["last_error"]
            moved = run_command(
                "--config", str(config), "hooks", "retry", "--all", "--hook", "app", "--to", "app2"
            )
            assert moved.returncode == 0 and "for hook app2" in moved.stdout, moved.stderr
            wait_until(
                lambda: _deliveries(database) == [("job.settled", "app2", "delivered", 1)],
                "the delivery to the renamed hook",
                daemon,
            )
    assert [r.answered for r in receiver.received] == [500, 200]
    assert len({r.event["id"] for r in receiver.received}) == 1

"""A real daemon with [events] on: the emulator sends Bedrock's state changes to a moto SQS
queue, and a finished job is stored in seconds although the passes are an hour apart."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from batch_poller.emulator.server import Endpoints
from tests.helpers import BUCKET, create_job, make_records, put_input
from tests.processes import count_records, job_column, run_command, running, write_config


def _status(url: str) -> Any:
    with urllib.request.urlopen(f"{url}/api/batch/poller/status", timeout=10) as response:
        return json.loads(response.read())


async def test_a_finished_job_is_stored_on_its_event_not_at_the_next_pass(
    tmp_path: Path, endpoints: Endpoints, bedrock: Any, s3: Any, sqs: Any, control: Any
) -> None:
    database = tmp_path / "daemon.db"
    queue = (await sqs.create_queue(QueueName="daemon-events"))["QueueUrl"]
    await control.configure(events_queue_url=queue)
    config = write_config(
        tmp_path,
        endpoints,
        aws={"sqs_endpoint_url": endpoints.s3},
        poller={"check_interval_seconds": 3600},
        events={"sqs_queue_url": queue, "fallback_interval_seconds": 3600},
    )
    uri = await put_input(s3, "evented/input.jsonl", make_records(7))
    arn = await create_job(bedrock, uri, name="evented", output_uri=f"s3://{BUCKET}/out/")
    tracked = run_command("--config", str(config), "track", arn)
    assert tracked.returncode == 0, tracked.stderr

    with running(config) as daemon:
        daemon.wait_for(
            lambda: any(e.get("event") == "events_consumer_started" for e in daemon.events()),
            "the consumer's start",
        )
        daemon.wait_for(lambda: job_column(database, arn, "last_checked_at"), "the first pass")
        await control.finish(arn, "Completed")
        # The next pass is an hour away: only the event can bring this about.
        daemon.wait_for(lambda: count_records(database, arn) == 7, "the results, on the event")
        [url] = [e["url"] for e in daemon.events() if e.get("event") == "http_listening"]
        status = _status(url)

    assert job_column(database, arn, "status") == "COMPLETED"
    hints = [e for e in daemon.events() if e.get("event") == "event_hint"]
    assert hints and {e["job_arn"] for e in hints} == {arn}
    assert status["events"]["accepted"] >= 1 and status["events"]["last_event_at"]

"""Completion events from the emulator through a real SQS queue (the moto server): a job is
processed as soon as its event arrives, a dropped event is covered by the fallback pass, and no
event (forged, duplicated, malformed) changes what Bedrock says. The clock is the fake one:
nothing here waits for time to pass."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from batch_poller.domain import JobStatus
from batch_poller.emulator.events import model_arn
from batch_poller.events.consumer import EventConsumer
from batch_poller.runtime import Runtime
from batch_poller.supervisor import Supervisor, pass_interval
from batch_poller.views import status_document
from tests.daemon_fixtures import FakeClock
from tests.helpers import BUCKET, create_job, make_records, put_input


@pytest.fixture
async def queue(sqs: Any, control: Any, runtime: Runtime) -> str:
    url: str = (await sqs.create_queue(QueueName="bedrock-batch-events"))["QueueUrl"]
    await control.configure(events_queue_url=url)
    events = runtime.settings.events.model_copy(update={"sqs_queue_url": url})
    # With events on, a job is checked when its event comes, else rarely.
    poller = runtime.settings.poller.model_copy(update={"check_interval_seconds": 300})
    runtime.settings = runtime.settings.model_copy(update={"events": events, "poller": poller})
    return url


def consumer_of(runtime: Runtime, sqs: Any, wake: Any = None) -> EventConsumer:
    # A short long poll: a test's last receive finds the queue empty.
    return EventConsumer(runtime, wake or Woken(), sqs, wait_seconds=1)


class Woken:
    def __init__(self) -> None:
        self.times = 0

    def __call__(self) -> None:
        self.times += 1


def _forged(arn: str, status: str, **envelope: Any) -> str:
    event = {
        "version": "0",
        "id": "forged",
        "detail-type": "Batch Inference Job State Change",
        "source": "aws.bedrock",
        "account": "123456789012",
        "time": "2026-01-15T12:00:00Z",
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "batchJobArn": arn,
            "batchJobName": "forged",
            "batchModelId": model_arn("amazon.nova-lite-v1:0", "us-east-1"),
            "status": status,
        },
    }
    event.update(envelope)
    return json.dumps(event)


async def _drop(sqs: Any, queue: str) -> None:
    """Every message now in the queue, received and deleted: events lost on the way."""
    while messages := (
        await sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    ).get("Messages", []):
        for message in messages:
            await sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


async def _left(sqs: Any, queue: str) -> int:
    attributes = await sqs.get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    return sum(int(v) for v in attributes["Attributes"].values())


async def test_a_completed_job_is_stored_as_soon_as_its_event_arrives(
    runtime: Runtime, supervisor: Supervisor, submit: Any, control: Any, sqs: Any, queue: str
) -> None:
    clock = runtime.clock
    assert isinstance(clock, FakeClock)
    arn = await submit(6)
    await supervisor.run_pass(check_all=True)  # checked once: not due again for 30 s
    await control.finish(arn, "Completed")
    await supervisor.run_pass()  # without its event, the job is not due yet
    unseen = await runtime.store.get_job(arn)
    woken = Woken()
    consumer = consumer_of(runtime, sqs, woken)

    started = clock.now()
    while await consumer.receive_once():
        pass
    await supervisor.run_pass()  # the pass the wake-up starts

    assert unseen is not None and unseen.results_fetched_at is None

    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.COMPLETED and job.total_records == 6
    assert clock.now() - started < timedelta(seconds=5)
    assert woken.times >= 1 and consumer.counts.accepted >= 1
    # The status shows what the consumer saw.
    supervisor.events = consumer.counts
    status = await status_document(supervisor, 0.0)
    assert status["events"]["accepted"] == consumer.counts.accepted
    assert status["events"]["ignored"] == {}
    assert status["events"]["last_event_at"] is not None
    assert await _left(sqs, queue) == 0  # every message deleted once its hint was committed
    # With events on, the passes are the safety net: every fallback_interval_seconds.
    assert pass_interval(runtime.settings, events=True) == 300
    assert pass_interval(runtime.settings, events=False) == runtime.settings.poller.interval_seconds


async def test_a_dropped_event_is_covered_by_the_fallback_pass(
    runtime: Runtime, supervisor: Supervisor, submit: Any, control: Any, sqs: Any, queue: str
) -> None:
    clock = runtime.clock
    assert isinstance(clock, FakeClock)
    arn = await submit(3)
    await supervisor.run_pass(check_all=True)
    await control.finish(arn, "Completed")
    await _drop(sqs, queue)  # the events never arrive

    await supervisor.run_pass()
    unseen = await runtime.store.get_job(arn)
    clock.current += timedelta(seconds=runtime.settings.events.fallback_interval_seconds)
    await supervisor.run_pass()

    assert unseen is not None and unseen.results_fetched_at is None
    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.COMPLETED


async def test_forged_duplicated_and_malformed_messages_change_nothing_they_should_not(
    runtime: Runtime, supervisor: Supervisor, submit: Any, sqs: Any, queue: str
) -> None:
    arn = await submit(3)  # in progress at Bedrock
    await supervisor.run_pass(check_all=True)
    await _drop(sqs, queue)  # only these messages
    bodies = [
        _forged(arn, "Completed"),  # forged: Bedrock says otherwise
        _forged(arn, "Completed"),  # and again
        "not json {",
        _forged(arn, "Completed", source="aws.s3"),
        _forged(arn, "Completed", time="Aug 28, 2024, 10:47:53 PM"),
        _forged("arn:aws:s3:::a-bucket", "Completed"),  # not a job ARN
        _forged(arn[:-12] + "zzzzzzzzzzzz", "Completed"),  # a job nobody tracks
    ]
    for body in bodies:
        await sqs.send_message(QueueUrl=queue, MessageBody=body)
    consumer = consumer_of(runtime, sqs)

    with capture_logs() as logs:
        while await consumer.receive_once():
            pass
    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    assert job is not None and job.status is JobStatus.IN_PROGRESS
    # Each refusal names the SQS message it refused.
    ignored = [entry for entry in logs if entry["event"] == "event_ignored"]
    assert len(ignored) == 5 and all(entry["message_id"] for entry in ignored)
    assert job.results_fetched_at is None
    assert consumer.counts.received == len(bodies)
    assert consumer.counts.accepted == 2
    assert consumer.counts.refused == {
        "not_json": 1,
        "other_source": 1,
        "bad_time": 1,
        "no_job_arn": 1,
        "unknown_job": 1,
    }
    assert await _left(sqs, queue) == 0


async def test_an_sqs_outage_is_survived(runtime: Runtime, sqs: Any, submit: Any) -> None:
    arn = await submit(1)
    missing = "bedrock-events-not-yet"
    url = (await sqs.create_queue(QueueName=missing))["QueueUrl"]
    await sqs.delete_queue(QueueUrl=url)
    events = runtime.settings.events.model_copy(update={"sqs_queue_url": url})
    runtime.settings = runtime.settings.model_copy(update={"events": events})
    consumer = consumer_of(runtime, sqs)
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(_until(lambda: consumer.failures >= 2), 30)
        failing = consumer.counts.as_dict()
        failing_gauge = _receiving(runtime, missing)
        await sqs.create_queue(QueueName=missing)  # the queue is back
        await sqs.send_message(QueueUrl=url, MessageBody=_forged(arn, "InProgress"))
        await asyncio.wait_for(_until(lambda: consumer.counts.accepted == 1), 60)
    finally:
        runtime.stopping.set()
        await asyncio.wait_for(task, 30)
    assert not task.cancelled() and task.exception() is None
    # The status said so while it lasted, and no longer does.
    assert failing["state"] == "failing" and failing["last_error"] and failing["failing_since"]
    assert consumer.counts.as_dict()["state"] == "receiving"
    # And the gauge the "events stopped" alert reads (deploy/prometheus/alerts.yml).
    assert (failing_gauge, _receiving(runtime, missing)) == (0, 1)


def _receiving(runtime: Runtime, queue: str) -> float | None:
    registry = runtime.metrics.registry
    return registry.get_sample_value("batch_poller_events_receiving", {"queue": queue})


async def _until(condition: Any) -> None:
    """Until the consumer's own counts say so: it has no event of its own to wait on."""
    while not condition():  # noqa: ASYNC110 - a state of another task, bounded by wait_for
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(("prefix", "adopted"), [("nightly-", True), ("other-", False)])
async def test_an_unknown_job_is_tracked_when_asked_and_its_name_fits(
    runtime: Runtime, bedrock: Any, s3: Any, sqs: Any, queue: str, prefix: str, adopted: bool
) -> None:
    events = runtime.settings.events.model_copy(
        update={"track_unknown_jobs": True, "job_name_prefix": prefix}
    )
    runtime.settings = runtime.settings.model_copy(update={"events": events})
    uri = await put_input(s3, "orphan/input.jsonl", make_records(2))
    arn = await create_job(bedrock, uri, name="nightly-7", output_uri=f"s3://{BUCKET}/out/")
    consumer = consumer_of(runtime, sqs)

    while await consumer.receive_once():  # the emulator's "Submitted" event
        pass

    tracked = await runtime.store.get_job(arn)
    assert (tracked is not None) is adopted
    assert consumer.counts.refused == ({} if adopted else {"unknown_job": 1})


@pytest.mark.parametrize(
    ("job_tag", "adopted"),
    [("team=search", {"search"}), ("team", {"search", "ads"}), ("team=ads", {"ads"})],
)
async def test_an_unknown_job_is_tracked_only_with_the_tag_asked_for(
    runtime: Runtime,
    bedrock: Any,
    s3: Any,
    sqs: Any,
    queue: str,
    control: Any,
    job_tag: str,
    adopted: set[str],
) -> None:
    events = runtime.settings.events.model_copy(
        update={"track_unknown_jobs": True, "job_tag": job_tag}
    )
    runtime.settings = runtime.settings.model_copy(update={"events": events})
    uri = await put_input(s3, "tagged/input.jsonl", make_records(2))
    arns = {
        team: await create_job(
            bedrock, uri, name=f"by-{team}", tags=tags, output_uri=f"s3://{BUCKET}/out/"
        )
        for team, tags in (("search", {"team": "search"}), ("ads", {"team": "ads"}), ("none", {}))
    }
    consumer = consumer_of(runtime, sqs)
    before = (await control.calls()).get("ListTagsForResource", 0)

    while await consumer.receive_once():
        pass

    tracked = {team for team, arn in arns.items() if await runtime.store.get_job(arn)}
    assert tracked == adopted
    # One read of the tags for each job whose name fits (each has had one event).
    assert (await control.calls())["ListTagsForResource"] - before == 3


async def test_a_forged_name_cannot_pass_a_job_off_as_one_to_adopt(
    runtime: Runtime, bedrock: Any, s3: Any, sqs: Any, queue: str
) -> None:
    """The prefix is checked against the name Bedrock gives the job, not the event's."""
    events = runtime.settings.events.model_copy(
        update={"track_unknown_jobs": True, "job_name_prefix": "nightly-"}
    )
    runtime.settings = runtime.settings.model_copy(update={"events": events})
    uri = await put_input(s3, "theirs/input.jsonl", make_records(2))
    arn = await create_job(bedrock, uri, name="someone-elses", output_uri=f"s3://{BUCKET}/out/")
    consumer = consumer_of(runtime, sqs)
    while await consumer.receive_once():  # the emulator's own event, its real name
        pass
    forged = json.loads(_forged(arn, "Completed"))
    forged["detail"]["batchJobName"] = "nightly-forged"
    await sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(forged))

    while await consumer.receive_once():
        pass

    assert await runtime.store.get_job(arn) is None
    assert consumer.counts.refused == {"unknown_job": 2}

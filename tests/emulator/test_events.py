"""Every state change goes to SQS as an EventBridge "Batch Inference Job State Change" event."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.helpers import create_job, make_records, put_input


async def _drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    events = []
    while True:
        response = await sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        messages = response.get("Messages", [])
        if not messages:
            return events
        for message in messages:
            events.append(json.loads(message["Body"]))
            await sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


async def test_each_status_change_is_announced_in_order(
    bedrock: Any, s3: Any, sqs: Any, control: Any
) -> None:
    queue_url = (await sqs.create_queue(QueueName="bedrock-events"))["QueueUrl"]
    await control.configure(events_queue_url=queue_url)
    await control.freeze_clock()
    uri = await put_input(s3, "in/a.jsonl", make_records(3))
    arn = await create_job(bedrock, uri, name="announced", tags={"emulator:outcome": "Failed"})

    await control.advance_clock(10)
    events = await _drain(sqs, queue_url)

    statuses = [e["detail"]["status"] for e in events]
    assert statuses == ["Submitted", "Validating", "Scheduled", "InProgress", "Failed"]
    last = events[-1]
    assert last["source"] == "aws.bedrock"
    assert last["detail-type"] == "Batch Inference Job State Change"
    assert last["resources"] == [arn]
    assert last["detail"]["batchJobArn"] == arn
    assert last["detail"]["batchJobName"] == "announced"
    # The model's ARN, as in AWS's documented sample; the envelope's time as EventBridge's.
    assert last["detail"]["batchModelId"] == (
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", last["time"])
    assert last["detail"]["accountId"] == "123456789012"
    assert last["detail"]["failureMessage"]
    assert last["detail"]["creationTime"]


async def test_no_queue_configured_sends_nothing(
    bedrock: Any, s3: Any, sqs: Any, control: Any
) -> None:
    queue_url = (await sqs.create_queue(QueueName="unused"))["QueueUrl"]
    uri = await put_input(s3, "in/a.jsonl", make_records(1))
    arn = await create_job(bedrock, uri)

    await control.finish(arn, "Completed")

    assert await _drain(sqs, queue_url) == []

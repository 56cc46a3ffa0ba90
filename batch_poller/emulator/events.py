"""EventBridge "Batch Inference Job State Change" events, delivered to an SQS queue as a rule
routing aws.bedrock events to a queue would deliver them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from batch_poller.emulator.lifecycle import EmulatedJob


def state_change_event(job: EmulatedJob, account_id: str, region: str) -> dict[str, Any]:
    changed_at = job.last_modified_time or job.submit_time
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Batch Inference Job State Change",
        "source": "aws.bedrock",
        "account": account_id,
        "time": changed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [job.job_arn],
        "detail": {
            "version": "0.0",
            "accountId": account_id,
            "batchJobName": job.job_name,
            "batchJobArn": job.job_arn,
            # The model's ARN, as in AWS's documented sample event.
            "batchModelId": model_arn(job.model_id, region),
            "status": job.status.value,
            "failureMessage": job.message if job.status.value in ("Failed", "Expired") else "",
            # The documented sample shows this human format, not ISO 8601.
            "creationTime": job.submit_time.strftime("%b %d, %Y, %I:%M:%S %p"),
        },
    }


async def send_event(sqs: Any, queue_url: str, event: dict[str, Any]) -> None:
    await sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))


def model_arn(model_id: str, region: str) -> str:
    """A foundation model's ARN from its id; an ARN (a profile, a custom model) as it is."""
    if model_id.startswith("arn:"):
        return model_id
    return f"arn:aws:bedrock:{region}::foundation-model/{model_id}"

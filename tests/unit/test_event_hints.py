"""Bedrock's state-change events read as hints: the emulator's events (as AWS's sample) are
hints, and every kind of message that is not one is refused with the reason it is counted by."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from batch_poller.domain import BedrockStatus
from batch_poller.events.hints import NotAHint, Refusal, read_hint

ARN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefabcdef"


def event(**changes: Any) -> dict[str, Any]:
    """An event as EventBridge delivers it, after AWS's documented sample."""
    document: dict[str, Any] = {
        "version": "0",
        "id": "6e9b1b0c-0000-4000-8000-000000000000",
        "detail-type": "Batch Inference Job State Change",
        "source": "aws.bedrock",
        "account": "123456789012",
        "time": "2024-08-28T22:47:53Z",
        "region": "us-east-1",
        "resources": [ARN],
        "detail": {
            "version": "0.0",
            "accountId": "123456789012",
            "batchJobName": "nightly",
            "batchJobArn": ARN,
            "batchModelId": "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
            "status": "Completed",
            "failureMessage": "",
            "creationTime": "Aug 28, 2024, 10:47:53 PM",
        },
    }
    document.update(changes)
    return document


def test_a_state_change_is_a_hint_for_its_job() -> None:
    hint = read_hint(json.dumps(event()))

    assert (hint.arn, hint.status, hint.job_name) == (ARN, BedrockStatus.COMPLETED, "nightly")
    assert hint.at == datetime(2024, 8, 28, 22, 47, 53, tzinfo=UTC)


def _detail(**changes: Any) -> dict[str, Any]:
    return {**event()["detail"], **changes}


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        ("not json {", Refusal.NOT_JSON),
        ('"a string"', Refusal.NOT_AN_EVENT),
        (json.dumps({"detail": "x"}), Refusal.NOT_AN_EVENT),
        (json.dumps(event(source="aws.s3")), Refusal.OTHER_SOURCE),
        (
            json.dumps(event(**{"detail-type": "Model Customization Job State Change"})),
            Refusal.OTHER_DETAIL_TYPE,
        ),
        (json.dumps(event(detail=_detail(batchJobArn="arn:aws:s3:::bucket"))), Refusal.NO_JOB_ARN),
        (json.dumps(event(detail=_detail(batchJobArn=None))), Refusal.NO_JOB_ARN),
        (json.dumps(event(detail=_detail(status="Exploded"))), Refusal.UNKNOWN_STATUS),
        (json.dumps(event(time="Aug 28, 2024, 10:47:53 PM")), Refusal.BAD_TIME),
        (json.dumps(event(time=None)), Refusal.BAD_TIME),
        (json.dumps(event(time="2024-13-45T99:00:00Z")), Refusal.BAD_TIME),
    ],
)
def test_what_is_not_a_hint_is_refused_with_its_reason(body: str, refusal: Refusal) -> None:
    with pytest.raises(NotAHint) as refused:
        read_hint(body)
    assert refused.value.refusal is refusal
    assert len(str(refused.value)) < 200

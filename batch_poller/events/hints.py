"""Bedrock's "Batch Inference Job State Change" events, as EventBridge delivers them to an SQS
queue, read as hints: which job to check now. The state itself always comes from Bedrock, so a
forged, stale, duplicated or reordered event can cause a check, never a wrong result.

A message that is not such an event is refused with the reason it is counted under."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from batch_poller.domain import JOB_ARN_PATTERN, BedrockStatus

SOURCE = "aws.bedrock"
DETAIL_TYPE = "Batch Inference Job State Change"


class Refusal(StrEnum):
    """Why a message is no hint; each is counted, logged and the message deleted."""

    NOT_JSON = "not_json"
    NOT_AN_EVENT = "not_an_event"  # JSON, but not an EventBridge envelope
    OTHER_SOURCE = "other_source"
    OTHER_DETAIL_TYPE = "other_detail_type"
    NO_JOB_ARN = "no_job_arn"
    UNKNOWN_STATUS = "unknown_status"
    BAD_TIME = "bad_time"  # not EventBridge's ISO 8601 (the console's "Aug 28, 2024, ...")
    UNKNOWN_JOB = "unknown_job"  # a job this daemon does not track (and does not adopt)


@dataclass(frozen=True, slots=True)
class Hint:
    """A job Bedrock says changed: check it now."""

    arn: str
    status: BedrockStatus
    job_name: str | None
    at: datetime
    # The SQS message it came in, for the log lines about it.
    message_id: str | None = None


class NotAHint(ValueError):
    def __init__(self, refusal: Refusal, detail: str) -> None:
        super().__init__(f"{refusal.value}: {detail}")
        self.refusal = refusal


def read_hint(body: str | bytes) -> Hint:
    """The hint in an SQS message's body, or NotAHint saying why there is none."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NotAHint(Refusal.NOT_JSON, "the message is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        raise NotAHint(Refusal.NOT_AN_EVENT, "no EventBridge envelope with a detail object")
    if event.get("source") != SOURCE:
        raise NotAHint(Refusal.OTHER_SOURCE, f"source {_shown(event.get('source'))}")
    if event.get("detail-type") != DETAIL_TYPE:
        raise NotAHint(Refusal.OTHER_DETAIL_TYPE, f"detail-type {_shown(event.get('detail-type'))}")
    detail: dict[str, Any] = event["detail"]
    arn = detail.get("batchJobArn")
    if not isinstance(arn, str) or not JOB_ARN_PATTERN.match(arn):
        raise NotAHint(Refusal.NO_JOB_ARN, f"batchJobArn {_shown(arn)}")
    try:
        status = BedrockStatus(str(detail.get("status")))
    except ValueError:
        raise NotAHint(Refusal.UNKNOWN_STATUS, f"status {_shown(detail.get('status'))}") from None
    name = detail.get("batchJobName")
    return Hint(arn, status, name if isinstance(name, str) else None, _event_time(event))


def _event_time(event: dict[str, Any]) -> datetime:
    """The envelope's time: EventBridge writes ISO 8601 in UTC ("2024-08-28T22:47:53Z")."""
    text = event.get("time")
    if isinstance(text, str) and text.endswith("Z"):
        try:
            return datetime.fromisoformat(text[:-1] + "+00:00").astimezone(UTC)
        except ValueError:
            pass
    raise NotAHint(Refusal.BAD_TIME, f"time {_shown(text)} is not ISO 8601 in UTC")


def _shown(value: Any) -> str:
    """A value from a message, short, for a log line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"

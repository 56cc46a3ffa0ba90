"""The webhook signature as a receiver checks it, and the backoff between delivery attempts."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from batch_poller.hooks.event import HookEvent, backoff_seconds
from batch_poller.hooks.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TYPE_HEADER,
    signature,
    signed_headers,
    verify,
)

SECRET = "whsec_test"
EVENT_ID = "evt_3f2a9c"
NOW = 1_700_000_000
BODY = b'{"type": "job.settled", "job_id": "abc123", "note": "caf\xc3\xa9"}'


def test_a_signature_verifies_with_its_secret() -> None:
    header = signature(SECRET, EVENT_ID, NOW, BODY)

    assert header.startswith("v1=")
    assert verify(SECRET, EVENT_ID, str(NOW), BODY, header, now=NOW)


def test_the_signature_is_the_documented_hmac() -> None:
    message = f"{EVENT_ID}.{NOW}.".encode() + BODY
    expected = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()

    assert signature(SECRET, EVENT_ID, NOW, BODY) == f"v1={expected}"


@pytest.mark.parametrize(
    ("secret", "event_id", "timestamp", "body"),
    [
        ("whsec_other", EVENT_ID, str(NOW), BODY),
        (SECRET, "evt_3f2a9d", str(NOW), BODY),
        (SECRET, EVENT_ID, str(NOW + 1), BODY),
        (SECRET, EVENT_ID, str(NOW), BODY.replace(b"abc123", b"abc124")),
        (SECRET, EVENT_ID, str(NOW), BODY + b" "),
    ],
    ids=["secret", "id", "timestamp", "body", "trailing-byte"],
)
def test_a_changed_secret_id_timestamp_or_body_fails(
    secret: str, event_id: str, timestamp: str, body: bytes
) -> None:
    header = signature(SECRET, EVENT_ID, NOW, BODY)

    assert not verify(secret, event_id, timestamp, body, header, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301, 86_400])
def test_a_timestamp_outside_the_tolerance_fails(offset: int) -> None:
    sent_at = NOW + offset
    header = signature(SECRET, EVENT_ID, sent_at, BODY)

    assert not verify(SECRET, EVENT_ID, str(sent_at), BODY, header, now=NOW)
    assert verify(SECRET, EVENT_ID, str(sent_at), BODY, header, now=sent_at)


def test_a_timestamp_at_the_tolerance_passes() -> None:
    header = signature(SECRET, EVENT_ID, NOW - 300, BODY)

    assert verify(SECRET, EVENT_ID, str(NOW - 300), BODY, header, now=NOW)


def test_during_rotation_either_of_two_values_is_enough() -> None:
    old = signature("whsec_old", EVENT_ID, NOW, BODY)
    new = signature("whsec_new", EVENT_ID, NOW, BODY)
    header = f"{old}, {new}"

    assert verify("whsec_old", EVENT_ID, str(NOW), BODY, header, now=NOW)
    assert verify("whsec_new", EVENT_ID, str(NOW), BODY, header, now=NOW)
    assert not verify("whsec_third", EVENT_ID, str(NOW), BODY, header, now=NOW)


@pytest.mark.parametrize(
    ("timestamp", "header"),
    [
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1_700_000_000", None),
        (str(NOW), ""),
        (str(NOW), "v1="),
        (str(NOW), "v1=é"),
        (str(NOW), "sha256=" + signature(SECRET, EVENT_ID, NOW, BODY)[3:]),
    ],
)
def test_a_malformed_timestamp_or_signature_fails_without_raising(
    timestamp: str, header: str | None
) -> None:
    value = signature(SECRET, EVENT_ID, NOW, BODY) if header is None else header

    assert not verify(SECRET, EVENT_ID, timestamp, BODY, value, now=NOW)


def test_an_empty_secret_verifies_nothing() -> None:
    header = signature("", EVENT_ID, NOW, BODY)

    assert not verify("", EVENT_ID, str(NOW), BODY, header, now=NOW)


def test_signed_headers_carry_the_event_and_a_signature_that_verifies() -> None:
    event = HookEvent(id=EVENT_ID, type="job.settled", body=BODY, fields={})

    headers = signed_headers(SECRET, event, NOW)

    assert headers["Content-Type"] == "application/json"
    assert headers[ID_HEADER] == EVENT_ID
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert headers[TYPE_HEADER] == "job.settled"
    assert verify(SECRET, EVENT_ID, headers[TIMESTAMP_HEADER], BODY, headers[SIGNATURE_HEADER], NOW)


def test_without_a_secret_there_is_no_signature_header() -> None:
    event = HookEvent(id=EVENT_ID, type="job.failed", body=BODY, fields={})

    headers = signed_headers("", event, NOW)

    assert SIGNATURE_HEADER not in headers
    assert headers[ID_HEADER] == EVENT_ID


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (40, 60.0), (5000, 60.0)],
)
def test_backoff_draws_between_zero_and_the_capped_doubling(attempt: int, ceiling: float) -> None:
    assert backoff_seconds(attempt, base=2.0, cap=60.0, draw=lambda: 0.0) == 0.0
    assert backoff_seconds(attempt, base=2.0, cap=60.0, draw=lambda: 1.0) == ceiling
    assert backoff_seconds(attempt, base=2.0, cap=60.0, draw=lambda: 0.5) == ceiling / 2


def test_backoff_with_the_default_draw_stays_within_its_bounds() -> None:
    draws = [backoff_seconds(4, base=1.0, cap=60.0) for _ in range(200)]

    assert all(0.0 <= seconds <= 8.0 for seconds in draws)


def test_backoff_counts_attempts_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_seconds(0, base=1.0, cap=60.0)

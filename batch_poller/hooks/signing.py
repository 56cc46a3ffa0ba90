"""The webhook signature: HMAC-SHA256 over the event's id, a timestamp and the body, in the style
of Stripe's and GitHub's webhooks. `verify` is the receiver's side; README shows the same check in
a few lines, and a test runs that snippet against `signed_headers`."""

from __future__ import annotations

import hashlib
import hmac

from batch_poller.hooks.event import HookEvent

ID_HEADER = "Batch-Poller-Event-Id"
# Unix seconds, an integer as text.
TIMESTAMP_HEADER = "Batch-Poller-Timestamp"
# One or more comma-separated "v1=<hex>" values.
SIGNATURE_HEADER = "Batch-Poller-Signature"
TYPE_HEADER = "Batch-Poller-Event-Type"


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    # The id and the timestamp are signed too: a captured request cannot be replayed later, nor
    # its body passed off under another event's id.
    message = f"{event_id}.{timestamp}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    event_id: str,
    timestamp_text: str,
    body: bytes,
    header_value: str,
    now: float,
    tolerance_seconds: float = 300,
) -> bool:
    """True when one of the header's "v1=" values signs this id, timestamp and body with
    `secret`, and the timestamp is within `tolerance_seconds` of `now` (unix seconds)."""
    if not secret or not (timestamp_text.isascii() and timestamp_text.isdigit()):
        return False
    timestamp = int(timestamp_text)
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = signature(secret, event_id, timestamp, body).encode()
    # Several values while the sender's secret is being rotated; bytes, since compare_digest
    # refuses non-ASCII text, and constant time, so a guess learns nothing from the timing.
    return any(
        hmac.compare_digest(expected, value.strip().encode()) for value in header_value.split(",")
    )


def signed_headers(secret: str, event: HookEvent, timestamp: int) -> dict[str, str]:
    """The headers a webhook request carries; no signature when the hook has no secret."""
    headers = {
        "Content-Type": "application/json",
        ID_HEADER: event.id,
        TIMESTAMP_HEADER: str(timestamp),
        TYPE_HEADER: event.type,
    }
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, event.id, timestamp, event.body)
    return headers

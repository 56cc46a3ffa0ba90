"""What the event consumer has seen: the status document and the page show it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class EventCounts:
    received: int = 0
    accepted: int = 0
    # Messages that were no hint, by reason (events.hints.Refusal).
    refused: dict[str, int] = field(default_factory=dict)
    # The time of the last event taken, as EventBridge stamped it.
    last_event_at: datetime | None = None
    # While receiving fails: since when, and why (None once a receive succeeds again).
    failing_since: datetime | None = None
    last_error: str | None = None

    def receiving(self, error: str | None, now: datetime) -> None:
        """A receive's outcome: None when it worked."""
        if error is None:
            self.failing_since = self.last_error = None
            return
        if self.failing_since is None:
            self.failing_since = now
        self.last_error = error

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "ignored": dict(self.refused),
            "last_event_at": _time(self.last_event_at),
            "state": "failing" if self.failing_since else "receiving",
            "failing_since": _time(self.failing_since),
            "last_error": self.last_error,
        }


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()

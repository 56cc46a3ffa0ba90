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

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "ignored": dict(self.refused),
            "last_event_at": None if self.last_event_at is None else self.last_event_at.isoformat(),
        }

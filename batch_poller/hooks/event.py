"""What a hook delivers (one event), what one try at it gave, and the wait before the next try."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class HookEvent:
    # The same on every attempt: receivers drop the copies a retry sends them.
    id: str
    # "job.settled", "job.failed" or "group.completed".
    type: str
    # The JSON document, sent as exactly these bytes (and signed as them).
    body: bytes
    # A few key fields (job_arn, job_id, group, status...) for a command's environment.
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Attempt:
    delivered: bool
    # Worth trying again later; only meaningful when not delivered.
    retry: bool
    # One line, for the log and the stored last_error.
    detail: str
    # Seconds the receiver asked to be left alone for (Retry-After), if it said.
    retry_after: float | None = None


class Sender(Protocol):
    """One receiver. `send` never raises for the receiver's failures: it reports them."""

    name: str

    async def send(self, event: HookEvent) -> Attempt: ...

    async def close(self) -> None: ...


def backoff_seconds(
    attempt: int, base: float, cap: float, draw: Callable[[], float] = random.random
) -> float:
    """Full jitter: a uniform draw in [0, min(cap, base * 2**(attempt-1))]; `attempt` counts
    from 1. `draw` gives a number in [0, 1]."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    # 2.0**1024 overflows; past 2**1023 the product is infinite and the cap wins anyway.
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 1023))
    return max(0.0, ceiling) * draw()

"""Time, injected: the daemon asks a Clock, so tests can move time on without waiting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def sleep_until_set(clock: Clock, seconds: float, *events: asyncio.Event) -> None:
    """Sleeps on the clock, unless one of the events (a stop, a wake-up) is set first."""
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(clock.sleep(seconds))]
    waits += [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()

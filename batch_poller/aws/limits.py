"""Limits the daemon puts on itself: a token bucket per AWS operation, so it rarely causes
throttling, and bounds on how much work runs at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable


class RateLimiter:
    """At most `rate` calls a second per operation, in bursts of up to `rate` calls. The rate
    is read at every call, so a reload that changes it applies at once; 0 means no limit."""

    def __init__(
        self,
        rate: Callable[[], float],
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rate = rate
        self._monotonic = monotonic
        self._sleep = sleep
        # operation -> (tokens left, the time they were counted at; it can lie ahead)
        self._buckets: dict[str, tuple[float, float]] = {}

    async def acquire(self, operation: str) -> None:
        rate = self._rate()
        if rate <= 0:
            return
        now = self._monotonic()
        tokens, at = self._buckets.get(operation, (rate, now))
        start = max(now, at)
        tokens = min(rate, tokens + (start - at) * rate)
        # With less than one token, this call waits until one has grown.
        take_at = start if tokens >= 1 else start + (1 - tokens) / rate
        self._buckets[operation] = (max(tokens, 1.0) - 1, take_at)
        if take_at > now:
            await self._sleep(take_at - now)


class ConcurrencyLimit:
    """At most limit() holders at once, shared by overlapping passes. The limit is read live,
    so a reload that changes it applies to the next job that starts."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._busy = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self._busy < self._limit())
            self._busy += 1
        try:
            yield
        finally:
            async with self._changed:
                self._busy -= 1
                self._changed.notify_all()

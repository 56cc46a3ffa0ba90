"""The token bucket: bursts up to the rate, then one call per 1/rate seconds, per operation."""

from __future__ import annotations

from batch_poller.aws.limits import RateLimiter


class Time:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))


async def test_a_burst_then_a_steady_rate() -> None:
    clock = Time()
    limiter = RateLimiter(lambda: 2.0, clock.monotonic, clock.sleep)

    for _ in range(5):
        await limiter.acquire("GetModelInvocationJob")

    assert clock.sleeps == [0.5, 1.0, 1.5]


async def test_tokens_grow_back_with_time_and_operations_are_apart() -> None:
    clock = Time()
    limiter = RateLimiter(lambda: 1.0, clock.monotonic, clock.sleep)

    await limiter.acquire("GetObject")
    await limiter.acquire("ListObjectsV2")  # its own bucket
    clock.now = 1.0
    await limiter.acquire("GetObject")

    assert clock.sleeps == []


async def test_a_rate_of_zero_means_no_limit() -> None:
    clock = Time()
    limiter = RateLimiter(lambda: 0.0, clock.monotonic, clock.sleep)

    for _ in range(100):
        await limiter.acquire("GetModelInvocationJob")

    assert clock.sleeps == []

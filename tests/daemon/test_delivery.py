"""The delivery task in the daemon's own process: a reload starts and retires hook workers, and
a retired worker's sender is closed; a worker that crashes is started again."""

from __future__ import annotations

import asyncio
from typing import Any

from batch_poller.config import Settings, WebhookSettings
from batch_poller.domain import JobStatus
from batch_poller.hooks.delivery import Deliverer, Hook
from batch_poller.hooks.event import Attempt, HookEvent
from batch_poller.rows import NewJob
from batch_poller.runtime import Runtime


class RecordingSender:
    """A receiver that takes every event and says when it was closed."""

    def __init__(self, hook: Hook) -> None:
        self.name = hook.name
        self.sent: list[HookEvent] = []
        self.closed = asyncio.Event()

    async def send(self, event: HookEvent) -> Attempt:
        self.sent.append(event)
        return Attempt(delivered=True, retry=False, detail="HTTP 200")

    async def close(self) -> None:
        self.closed.set()


def _with_webhooks(settings: Settings, *names: str) -> Settings:
    webhooks = [WebhookSettings(name=name, url="http://127.0.0.1:9/", secret="s") for name in names]
    hooks = settings.hooks.model_copy(update={"webhook": webhooks})
    return settings.model_copy(update={"hooks": hooks})


async def test_a_reload_starts_new_hooks_and_closes_the_retired_ones(runtime: Runtime) -> None:
    senders: dict[str, RecordingSender] = {}
    made = asyncio.Event()

    def make(hook: Any) -> RecordingSender:
        senders[hook.name] = RecordingSender(hook)
        made.set()
        return senders[hook.name]

    runtime.settings = _with_webhooks(runtime.settings, "old")
    deliverer = Deliverer(runtime, make)
    task = asyncio.create_task(deliverer.run())
    try:
        await asyncio.wait_for(made.wait(), 10)
        assert [route.name for route in runtime.store.outbox.routes] == ["old"]

        runtime.settings = _with_webhooks(runtime.settings, "new")
        await deliverer.reconfigure()
        await asyncio.wait_for(senders["old"].closed.wait(), 10)
        assert [route.name for route in runtime.store.outbox.routes] == ["new"]
        assert not senders["new"].closed.is_set()
    finally:
        runtime.stopping.set()
        await asyncio.wait_for(task, 10)
    assert senders["new"].closed.is_set()


class CrashingOnceSender(RecordingSender):
    """Fails in a way no sender should (a bug), once; then takes events."""

    def __init__(self, hook: Hook) -> None:
        super().__init__(hook)
        self.crashed = False
        self.delivered = asyncio.Event()

    async def send(self, event: HookEvent) -> Attempt:
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("a bug in the sender")
        self.delivered.set()
        return await super().send(event)


async def test_a_worker_that_crashes_is_started_again_and_delivers(runtime: Runtime) -> None:
    sender: CrashingOnceSender | None = None
    made = asyncio.Event()

    def make(hook: Any) -> CrashingOnceSender:
        nonlocal sender
        sender = CrashingOnceSender(hook)
        made.set()
        return sender

    runtime.settings = _with_webhooks(runtime.settings, "app")
    task = asyncio.create_task(Deliverer(runtime, make).run())
    try:
        await asyncio.wait_for(made.wait(), 10)
        failed = NewJob(arn=ARN, status=JobStatus.FAILED, message="refused")
        assert await runtime.store.track_job(failed, runtime.clock.now())
        assert sender is not None
        await asyncio.wait_for(sender.delivered.wait(), 10)
    finally:
        runtime.stopping.set()
        await asyncio.wait_for(task, 10)
    assert sender.crashed and [event.type for event in sender.sent] == ["job.failed"]
    [delivery] = await runtime.store.outbox.deliveries()
    assert (delivery.state.value, delivery.attempts) == ("delivered", 1)


ARN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/crashed00001"


class ThrottlingSender(RecordingSender):
    """Answers every event as a receiver that is rate-limiting would: 429, Retry-After."""

    def __init__(self, hook: Hook, after: float) -> None:
        super().__init__(hook)
        self.after = after
        self.refused = asyncio.Event()

    async def send(self, event: HookEvent) -> Attempt:
        self.refused.set()
        return Attempt(delivered=False, retry=True, detail="HTTP 429", retry_after=self.after)


async def test_a_receivers_retry_after_is_waited_for_within_the_longest_wait(
    runtime: Runtime,
) -> None:
    for after, expected in ((120.0, 120.0), (7200.0, 3600.0)):
        sender: ThrottlingSender | None = None
        made = asyncio.Event()

        def make(hook: Any, after: float = after, made: asyncio.Event = made) -> ThrottlingSender:
            nonlocal sender
            sender = ThrottlingSender(hook, after)
            made.set()
            return sender

        runtime.settings = _with_webhooks(runtime.settings, f"app-{int(after)}")
        runtime.stopping.clear()
        task = asyncio.create_task(Deliverer(runtime, make).run())
        try:
            await asyncio.wait_for(made.wait(), 10)
            arn = f"{ARN[:-5]}{int(after):05d}"
            failed = NewJob(arn=arn, status=JobStatus.FAILED, message="refused")
            await runtime.store.track_job(failed, runtime.clock.now())
            assert sender is not None
            await asyncio.wait_for(sender.refused.wait(), 10)
            refused_at = runtime.clock.now()
        finally:
            runtime.stopping.set()
            await asyncio.wait_for(task, 10)
        [delivery] = await runtime.store.outbox.deliveries(hook=f"app-{int(after)}")
        waited = (delivery.next_attempt_at - refused_at).total_seconds()
        assert waited == expected, (after, waited)

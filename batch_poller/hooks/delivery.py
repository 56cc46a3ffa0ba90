"""The delivery task: sends the outbox's events to the configured hooks, at least once.

One worker per hook claims that hook's due deliveries (a lease, as for jobs, so replicas never
send one delivery at the same time), sends them, and records each attempt: delivered, tried
again after a jittered exponential wait, or dead-lettered after its last attempt. A slow or dead
receiver holds up only its own worker; the polling and the ingestion never wait for a hook.
A worker that dies is logged and started again; none is lost silently."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta

import orjson
import structlog

from batch_poller.clock import sleep_until_set
from batch_poller.config import CommandHookSettings, HooksSettings, WebhookSettings
from batch_poller.hooks.command import CommandSender
from batch_poller.hooks.event import Attempt, HookEvent, Sender, backoff_seconds
from batch_poller.hooks.webhook import WebhookSender
from batch_poller.runtime import Runtime
from batch_poller.store import StoreError
from batch_poller.store.outbox import Delivery, Outbox, routes_of

log = structlog.get_logger("batch_poller.hooks")

# Deliveries one worker claims at a time: sent one after the other, so a lease covers them all.
CLAIM_BATCH = 10
# Beyond the hook's own timeout, what a claim's lease allows for recording the attempt.
LEASE_MARGIN_SECONDS = 60.0
# A worker that crashed waits this long before it starts again, so a persistent fault does not
# spin.
RESTART_SECONDS = 5.0


Hook = WebhookSettings | CommandHookSettings


def sender_for(hook: Hook) -> Sender:
    if isinstance(hook, WebhookSettings):
        return WebhookSender(hook.name, hook.url, hook.secret_value(), hook.timeout_seconds)
    return CommandSender(hook.name, hook.argv, hook.timeout_seconds)


def hook_event(delivery: Delivery) -> HookEvent:
    """The event as a sender sends it: the stored body, byte for byte, and its key fields."""
    document = orjson.loads(delivery.payload)
    subject = document.get("job") or document.get("group") or {}
    fields = {
        "job_arn": delivery.batch_job_arn,
        "job_id": subject.get("job_id") if "job" in document else None,
        "group": delivery.group_name,
        "status": subject.get("status"),
    }
    return HookEvent(
        id=delivery.event_id,
        type=delivery.type,
        body=delivery.payload.encode(),
        fields={key: str(value) for key, value in fields.items() if value is not None},
    )


class Deliverer:
    """Runs one worker per configured hook until the daemon stops; `reconfigure` follows a
    reload (workers of hooks that went away stop, new ones start)."""

    def __init__(self, rt: Runtime, make_sender: Callable[[Hook], Sender] = sender_for) -> None:
        self.rt = rt
        self._make_sender = make_sender
        self._workers: dict[str, _Worker] = {}
        # Workers a reload retired, until their senders are closed.
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def outbox(self) -> Outbox:
        return self.rt.store.outbox

    async def run(self) -> None:
        await self.reconfigure()
        try:
            while not self.rt.stopping.is_set():
                # This process's own events: every worker looks at once.
                waiter = asyncio.ensure_future(self.outbox.written.wait())
                stopper = asyncio.ensure_future(self.rt.stopping.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                self.outbox.written.clear()
                for worker in self._workers.values():
                    worker.wake.set()
        finally:
            await self._stop_all()

    async def deliver_once(self) -> None:
        """Sends what is due now to every hook, then returns (`run --once`): a failed attempt
        waits for its retry time, at a later run."""
        workers = [
            _Worker(self.rt, hook, self._make_sender(hook)) for hook in self.rt.settings.hooks.all()
        ]

        async def drain(worker: _Worker) -> None:
            try:
                while await worker.deliver_due():
                    pass
            finally:
                await worker.sender.close()

        await asyncio.gather(*(drain(worker) for worker in workers))

    async def reconfigure(self) -> None:
        """Applies the running settings' hooks: routes for new events, one worker each; the
        pending deliveries of a hook no longer configured are dead-lettered, and said so."""
        hooks = {hook.name: hook for hook in self.rt.settings.hooks.all()}
        self.outbox.routes = routes_of(self.rt.settings.hooks.all())
        stranded = await self.outbox.strand(list(hooks), self.rt.clock.now())
        for gone, count in stranded.items():
            log.warning(
                "hook_deliveries_stranded",
                hook=gone,
                deliveries=count,
                detail="no hook of that name is configured: dead-lettered; `batch-poller hooks "
                "retry --hook NAME --all --to NEW` sends them to a configured hook",
            )
        for name in list(self._workers):
            worker = self._workers[name]
            if hooks.get(name) != worker.settings:
                self._workers.pop(name).stop()
                retiring = asyncio.ensure_future(worker.stopped())
                self._retiring.add(retiring)
                retiring.add_done_callback(self._retiring.discard)
        for name, hook in hooks.items():
            if name not in self._workers:
                worker = _Worker(self.rt, hook, self._make_sender(hook))
                self._workers[name] = worker
                worker.start()

    async def _stop_all(self) -> None:
        workers = list(self._workers.values())
        self._workers.clear()
        for worker in workers:
            worker.stop()
        for worker in workers:
            await worker.stopped()
        await asyncio.gather(*self._retiring)


class _Worker:
    """Delivers one hook's events."""

    def __init__(self, rt: Runtime, settings: Hook, sender: Sender) -> None:
        self.rt = rt
        self.settings = settings
        self.sender = sender
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervised(), name=f"hook {self.name}")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def stopped(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.sender.close()

    async def _supervised(self) -> None:
        while not self.rt.stopping.is_set():
            try:
                await self._deliver_forever()
            except asyncio.CancelledError:
                raise
            except StoreError as error:
                log.warning("hook_store_unavailable", hook=self.name, error=str(error))
                await self._wait(RESTART_SECONDS)
            except Exception:
                log.exception("hook_worker_crashed", hook=self.name, detail="restarted")
                await self._wait(RESTART_SECONDS)

    async def _deliver_forever(self) -> None:
        while not self.rt.stopping.is_set():
            sent = await self.deliver_due()
            if sent:
                continue
            await self._wait(await self._until_next())

    async def deliver_due(self) -> int:
        """Claims this hook's due deliveries and sends them; returns how many were tried."""
        hooks = self.rt.settings.hooks
        seconds = self.settings.timeout_seconds * CLAIM_BATCH + LEASE_MARGIN_SECONDS
        lease = timedelta(seconds=seconds)
        outbox = self.rt.store.outbox
        batch = await outbox.claim(self.name, self.rt.clock.now(), CLAIM_BATCH, lease)
        for delivery in batch:
            if self.rt.stopping.is_set():
                break  # the rest stay claimed until the exit gives the leases up
            attempt = await self.sender.send(hook_event(delivery))
            await self._record(delivery, attempt, hooks)
        return len(batch)

    async def _record(self, delivery: Delivery, attempt: Attempt, hooks: HooksSettings) -> None:
        outbox = self.rt.store.outbox
        now = self.rt.clock.now()
        fields = {"hook": self.name, "event_id": delivery.event_id, "type": delivery.type}
        if attempt.delivered:
            await outbox.delivered(delivery.id, now)
            self.rt.metrics.hook_deliveries.labels(self.name, "delivered").inc()
            log.info("hook_delivered", attempts=delivery.attempts + 1, **fields)
            return
        attempts = delivery.attempts + 1
        limit = self.settings.max_attempts or hooks.max_attempts
        if attempt.retry and attempts < limit:
            wait = backoff_seconds(attempts, hooks.retry_base_seconds, hooks.retry_max_seconds)
            if attempt.retry_after is not None:
                # What the receiver asked for, within the longest wait the settings allow.
                wait = max(wait, min(attempt.retry_after, hooks.retry_max_seconds))
            retry_at = now + timedelta(seconds=wait)
            await outbox.failed(delivery.id, attempt.detail, now, retry_at)
            self.rt.metrics.hook_deliveries.labels(self.name, "retried").inc()
            log.warning(
                "hook_delivery_failed",
                attempts=attempts,
                error=attempt.detail,
                retry_at=retry_at.isoformat(),
                **fields,
            )
            return
        await outbox.failed(delivery.id, attempt.detail, now, None)
        self.rt.metrics.hook_deliveries.labels(self.name, "dead").inc()
        why = "not worth retrying" if not attempt.retry else f"after {attempts} attempts"
        log.error(
            "hook_dead_letter",
            attempts=attempts,
            error=attempt.detail,
            detail=f"given up {why}: `batch-poller hooks retry` sends it again",
            **fields,
        )

    async def _until_next(self) -> float:
        """Seconds until the next pending delivery falls due, at most the poll interval."""
        poll = self.rt.settings.hooks.poll_seconds
        due = await self.rt.store.outbox.next_due([self.name])
        if due is None:
            return poll
        return max(0.0, min(poll, (due - self.rt.clock.now()).total_seconds()))

    async def _wait(self, seconds: float) -> None:
        """Until woken (an event was written here), the time has passed, or the stop."""
        if seconds <= 0:
            return
        await sleep_until_set(self.rt.clock, seconds, self.wake, self.rt.stopping)
        self.wake.clear()

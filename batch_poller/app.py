"""The only place that builds concrete objects and wires them together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from botocore.config import Config

from batch_poller.aws.bedrock import Bedrock
from batch_poller.aws.errors import RetryPolicy
from batch_poller.aws.limits import RateLimiter
from batch_poller.aws.s3 import S3
from batch_poller.aws.session import aws_session
from batch_poller.clock import Clock, SystemClock
from batch_poller.config import Settings
from batch_poller.logging import set_process_field
from batch_poller.metrics import Metrics
from batch_poller.runtime import Runtime
from batch_poller.store import JobStore, StoreError, open_store
from batch_poller.store.engine import SessionLimits, idle_in_transaction_for
from batch_poller.store.outbox import routes_of
from batch_poller.supervisor import Supervisor
from batch_poller.tracker import JobTracker

# At exit, how long giving the leases up may take before the process leaves them to run out:
# short, so a stop under systemd is never held up by a database that does not answer.
LEAVE_SECONDS = 2.0


def _client_config(settings: Settings) -> Config:
    # tenacity owns retries (with the injected clock); botocore makes one attempt per call.
    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=max(10, settings.poller.max_concurrent_jobs * 2),
    )


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    clock: Clock | None = None,
    *,
    store: JobStore | None = None,
    stopping: asyncio.Event | None = None,
) -> AsyncIterator[Runtime]:
    """The live objects. A store opened already (the daemon waits for its database) is taken
    over and closed with the rest; `stopping` is the daemon's, set by its signal handlers."""
    clock = clock or SystemClock()
    if store is None:
        store = await open_configured_store(settings)
    try:
        session = aws_session(settings.aws.region)
        config = _client_config(settings)
        metrics = Metrics()
        identity = store.tenancy.identity
        # Which of the processes sharing the database said it: a field of every log entry.
        set_process_field("replica", identity.owner)
        store.set_lease(timedelta(seconds=settings.poller.lease_seconds))
        route_events(store, settings)
        metrics.replica.info(
            {"owner": identity.owner, "host": identity.host, "pid": str(identity.pid)}
        )
        retry = RetryPolicy(sleep=clock.sleep, observe=metrics.aws_call)
        async with (
            session.client(
                "bedrock", endpoint_url=settings.aws.bedrock_endpoint_url or None, config=config
            ) as bedrock_client,
            session.client(
                "s3", endpoint_url=settings.aws.s3_endpoint_url or None, config=config
            ) as s3_client,
        ):
            rt = Runtime(
                store=store,
                bedrock=Bedrock(bedrock_client, retry),
                s3=S3(s3_client, retry),
                clock=clock,
                settings=settings,
                metrics=metrics,
                stopping=stopping or asyncio.Event(),
            )
            # The limit is read from the live settings, so a reload changes it.
            retry.before_call = RateLimiter(lambda: rt.settings.aws.max_calls_per_second).acquire
            yield rt
    finally:
        await _leave(store)
        await store.close()


async def _leave(store: JobStore) -> None:
    """Gives up this process's leases and its replica row, so nobody waits for them to run
    out. A database that is down now is not worth failing the exit for: they run out anyway."""
    with contextlib.suppress(StoreError, TimeoutError):
        async with asyncio.timeout(LEAVE_SECONDS):
            await store.replicas.leave()


async def open_configured_store(settings: Settings) -> JobStore:
    """The store with the configured lock waits, its events routed to the configured hooks."""
    store = await open_store(settings.database.url, limits=session_limits(settings))
    route_events(store, settings)
    return store


def route_events(store: JobStore, settings: Settings) -> None:
    """Events this process writes (a settle, a compile, by the daemon or by any command) get a
    delivery for each configured hook that wants them, whichever process then sends it."""
    store.outbox.routes = routes_of(settings.hooks.all())


def session_limits(settings: Settings) -> SessionLimits:
    """The database sessions' waits from the configuration; a transaction left idle ends about
    when the lease of a frozen process's jobs does."""
    return SessionLimits(
        busy_timeout_seconds=settings.database.sqlite_busy_timeout_seconds,
        lock_timeout_seconds=settings.database.lock_timeout_seconds,
        idle_in_transaction_seconds=idle_in_transaction_for(settings.poller.lease_seconds),
    )


def build_supervisor(rt: Runtime, role: str = "command") -> Supervisor:
    return Supervisor(rt, JobTracker(rt), role)

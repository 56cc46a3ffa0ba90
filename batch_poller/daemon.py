"""`batch-poller run` under systemd: signals, sd_notify, the watchdog, and SIGHUP reloads."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import structlog

from batch_poller.app import build_supervisor, open_runtime, session_limits
from batch_poller.config import EX_CONFIG, ConfigError, Settings, config_path, load_settings
from batch_poller.early_signals import stop_signal_received
from batch_poller.events.consumer import EventConsumer
from batch_poller.hooks.delivery import Deliverer
from batch_poller.http.server import HttpServer, start_http
from batch_poller.logging import configure_logging
from batch_poller.memory import return_free_memory
from batch_poller.runtime import Runtime
from batch_poller.store import JobStore
from batch_poller.store.daemon_lock import (
    DaemonLock,
    DaemonLockError,
    DatabaseFileHeld,
    closed_after,
)
from batch_poller.store.engine import sqlite_file, to_async_url
from batch_poller.store.startup import (
    Backoff,
    DatabaseConfigError,
    DatabaseUnavailableError,
    open_store_when_available,
)
from batch_poller.supervisor import PassReport, Supervisor
from batch_poller.systemd import Notifier, keep_watchdog_fed, watchdog_interval

log = structlog.get_logger("batch_poller")

# `run --once` (cron, a timer) gives up on a database that does not answer after this many
# attempts (about 15 s with the default waits), so the next run is not stacked behind it; the
# daemon itself waits as long as it takes.
ONCE_ATTEMPTS = 5

# What a reload cannot change in a running process: it is logged as needing a restart.
NEEDS_RESTART = (
    "database.url",
    "database.connect_retry_base_seconds",
    "database.connect_retry_max_seconds",
    "database.sqlite_busy_timeout_seconds",
    "database.lock_timeout_seconds",
    "logging.format",
    "logging.journal_socket",
    "http.enabled",
    "http.host",
    "http.port",
    "http.max_body_bytes",
    "events.sqs_queue_url",
    "aws.sqs_endpoint_url",
)


class Daemon:
    def __init__(self, settings: Settings, explicit_config: str | None = None) -> None:
        self.settings = settings
        self.config_file: Path | None = config_path(explicit_config)
        self.notifier = Notifier()
        self._rt: Runtime | None = None
        self._supervisor: Supervisor | None = None
        self._deliverer: Deliverer | None = None
        self._reloading = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._admin_token = settings.admin_token()
        self.http: HttpServer | None = None
        # Set by SIGTERM/SIGINT from the first moment of run(); the runtime shares it.
        self._stopping = asyncio.Event()
        self._passes = 0

    async def run(self, *, once: bool = False) -> int:
        # Handlers first: a stop during start-up, even while the database is awaited, exits 0.
        self._install_signal_handlers()
        early = stop_signal_received()
        if early is not None:
            self._on_stop_signal(early)
        # One daemon per SQLite file (store/daemon_lock.py): taken before the store is opened
        # when the file is there, so a refused daemon never writes to it (a migration, say).
        lock: DaemonLock | None = None
        try:
            lock = _locked(self.settings.database.url, only_if_there=True)
        except DaemonLockError as error:
            return self._refused(error)
        try:
            store = await self._open_store(max_attempts=ONCE_ATTEMPTS if once else None)
        except (DatabaseConfigError, DatabaseUnavailableError) as error:
            if lock is not None:
                lock.close()  # no connection of ours is open: closing it drops no SQLite lock
            config = isinstance(error, DatabaseConfigError)
            prefix = "configuration error: " if config else ""
            print(f"batch-poller: {prefix}{error}", file=sys.stderr, flush=True)
            self.notifier.close()
            return EX_CONFIG if config else 1
        if store is None:
            if lock is not None:
                lock.close()
            log.info("daemon_stopped", detail="stopped before the database was open")
            self.notifier.close()
            return 0
        if lock is None:  # a new file, there once the store is open
            try:
                lock = _locked(self.settings.database.url, only_if_there=False)
            except DaemonLockError as error:
                await store.close()
                return self._refused(error)
        # The lock is held while the daemon runs, and let go after open_runtime closed the store.
        async with (
            closed_after(lock),
            open_runtime(self.settings, store=store, stopping=self._stopping) as rt,
        ):
            self._rt = rt
            supervisor = self._supervisor = build_supervisor(rt, role="daemon")
            supervisor.after_pass = self._after_pass
            if once:
                report = await supervisor.run_pass(check_all=True)
                log.info("pass_completed", **report.as_dict())
                await Deliverer(rt).deliver_once()
                return 0
            if self.settings.http.enabled:
                try:
                    self.http = await start_http(
                        supervisor, self.settings.http, lambda: self._admin_token
                    )
                except OSError as error:
                    print(f"batch-poller: {_bind_failure(self.settings, error)}", file=sys.stderr)
                    self.notifier.close()
                    return _bind_exit_code(error)
                log.info("http_listening", url=self.http.url)
            loop_task = asyncio.create_task(supervisor.run(), name="supervisor")
            deliverer = self._deliverer = Deliverer(rt)
            delivery_task = asyncio.create_task(deliverer.run(), name="hooks")
            if self.settings.events.enabled:
                consumer = EventConsumer(rt, supervisor.wake)
                supervisor.events = consumer.counts
                self._spawn(consumer.run())
            # The database is usable and the first pass is scheduled: systemd may now consider
            # the service started.
            self.notifier.ready(await self._status_line())
            interval = watchdog_interval()
            if interval is not None and self.notifier.enabled:
                self._spawn(keep_watchdog_fed(self.notifier, interval, self._wedged))
            log.info(
                "daemon_started",
                config=str(self.config_file),
                pid=os.getpid(),
                polling="paused" if supervisor.paused else "running",
                events="on" if self.settings.events.enabled else "off",
            )
            await loop_task
            await delivery_task
            self.notifier.stopping()
            if self.http is not None:
                await self.http.close()
            log.info("daemon_stopped")
        for task in self._background:
            task.cancel()
        self.notifier.close()
        return 0

    async def _open_store(self, max_attempts: int | None) -> JobStore | None:
        """The store once the database answers; None if a stop came first."""
        database = self.settings.database

        def unavailable(attempt: int, error: str, retry_in: float) -> None:
            log.warning("database_unavailable", attempt=attempt, error=error, retry_in=retry_in)
            self.notifier.status(f"waiting for the database (attempt {attempt}): {error}")

        return await open_store_when_available(
            database.url,
            backoff=Backoff(
                database.connect_retry_base_seconds, database.connect_retry_max_seconds
            ),
            stopping=self._stopping,
            on_unavailable=unavailable,
            limits=session_limits(self.settings),
            max_attempts=max_attempts,
        )

    def _wedged(self) -> str | None:
        """Why the watchdog should go unfed: passes have failed for too long."""
        if self._rt is None or self._supervisor is None:
            return None
        health = self._supervisor.health
        bound = self._rt.settings.poller.unhealthy_after_seconds
        if not health.wedged(self._rt.clock.now(), bound):
            return None
        return f"{health.failed_passes} passes failed in a row: {health.last_error}"

    # -- signals -----------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            # Only the main thread can take signals: a daemon run from another thread (from
            # code that embeds it) is stopped through its caller.
            return
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_stop_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)

    def _refused(self, error: DaemonLockError) -> int:
        print(f"batch-poller: {error}", file=sys.stderr, flush=True)
        self.notifier.close()
        return EX_CONFIG if isinstance(error, DatabaseFileHeld) else 1

    def _on_stop_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stopping.is_set():
            # A second signal: the store's transactions keep it consistent, so leave now.
            log.warning("forced_stop", signal=name)
            os._exit(128 + signum)
        log.info("stopping", signal=name)
        self.notifier.stopping()
        self._stopping.set()

    def _on_reload_signal(self) -> None:
        if self._rt is None:  # still starting: the file is read afresh at start anyway
            log.info("reload_ignored", detail="the daemon is still starting")
            return
        self._spawn(self.reload())

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- reload ------------------------------------------------------------------------------

    async def reload(self) -> None:
        """Re-reads the file; applies what can change while running, keeps the rest."""
        assert self._rt is not None and self._supervisor is not None
        async with self._reloading:
            self.notifier.reloading()
            try:
                fresh = load_settings(str(self.config_file) if self.config_file else None)
            except ConfigError as error:
                log.error("reload_failed", error=str(error), detail="the running settings stay")
                self.notifier.ready(await self._status_line())
                return
            running = self._rt.settings
            kept = [key for key in NEEDS_RESTART if _get(fresh, key) != _get(running, key)]
            if kept:
                log.warning("reload_needs_restart", settings=kept)
            applied = fresh.model_copy(
                update={
                    "database": running.database,
                    "http": running.http.model_copy(
                        update={
                            "admin_token_file": fresh.http.admin_token_file,
                            "admin_token": fresh.http.admin_token,
                        }
                    ),
                    "logging": _logging_kept(fresh, running),
                    # The consumer's queue and client are the ones it started with.
                    "events": fresh.events.model_copy(
                        update={"sqs_queue_url": running.events.sqs_queue_url}
                    ),
                    "aws": fresh.aws.model_copy(
                        update={"sqs_endpoint_url": running.aws.sqs_endpoint_url}
                    ),
                }
            )
            changed = _changed_keys(running, applied)
            self._rt.settings = applied
            self._admin_token = fresh.admin_token()
            configure_logging(
                applied.logging.level, applied.logging.format, applied.logging.journal_socket
            )
            if self._deliverer is not None:
                await self._deliverer.reconfigure()
            if applied.poller.enabled != running.poller.enabled:
                (self._supervisor.resume if applied.poller.enabled else self._supervisor.pause)()
            log.info("reloaded", changed=changed)
            self.notifier.ready(await self._status_line())
            self._supervisor.wake()

    # -- status ------------------------------------------------------------------------------

    async def _after_pass(self, report: PassReport) -> None:
        self.notifier.status(await self._status_line(report))
        self._passes += 1
        if self._passes == 1:  # start-up is over: what it freed goes back to the system
            return_free_memory()

    async def _status_line(self, report: PassReport | None = None) -> str:
        assert self._rt is not None
        counts = await self._rt.store.status_counts()
        jobs = ", ".join(f"{n} {s.value.lower()}" for s, n in counts.items() if n) or "no jobs"
        line = jobs
        if self._supervisor is not None and self._supervisor.paused:
            line = "paused; " + line
        if report is not None:
            done = ", ".join(f"{n} {k}" for k, n in report.as_dict().items() if n and k != "jobs")
            line += f"; last pass: {report.jobs} jobs" + (f" ({done})" if done else "")
        return line


def _locked(url: str, *, only_if_there: bool) -> DaemonLock | None:
    """The daemon's lock on its SQLite file, taken; None for PostgreSQL, an in-memory
    database, or (`only_if_there`) a file not created yet."""
    try:
        parsed = to_async_url(url)
    except ValueError:
        return None  # the store's opening says what is wrong with the URL
    path = sqlite_file(parsed)
    if path is None or (only_if_there and not os.path.exists(path)):
        return None
    lock = DaemonLock.open(parsed)
    if lock is None:
        return None
    try:
        lock.take()
    except DaemonLockError:
        lock.close()
        raise
    return lock


def _bind_failure(settings: Settings, error: OSError) -> str:
    http = settings.http
    reason = os.strerror(error.errno) if error.errno else str(error)
    return (
        f"cannot listen on {http.host}:{http.port} ([http] host and port, or "
        f"[http] enabled = false): {reason}"
    )


def _bind_exit_code(error: OSError) -> int:
    """A port in use is most often the previous instance still shutting down: exit 1, so
    systemd's restart tries again. An address not on this host or a port not allowed to us is a
    configuration mistake no restart mends: exit 78, which the unit does not restart."""
    return 1 if error.errno == errno.EADDRINUSE else EX_CONFIG


def _get(settings: Settings, dotted: str) -> Any:
    section, key = dotted.split(".")
    return getattr(getattr(settings, section), key)


def _logging_kept(fresh: Settings, running: Settings) -> Any:
    """The new log level applies at once; the log's destination stays until a restart."""
    return running.logging.model_copy(update={"level": fresh.logging.level})


def _changed_keys(old: Settings, new: Settings) -> list[str]:
    before, after = _flatten(old.model_dump()), _flatten(new.model_dump())
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat

"""`batch-poller run` under systemd: signals, sd_notify, the watchdog, and SIGHUP reloads."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import structlog

from batch_poller.app import build_supervisor, open_runtime
from batch_poller.config import ConfigError, Settings, config_path, load_settings
from batch_poller.http.server import HttpServer, start_http
from batch_poller.logging import configure_logging
from batch_poller.runtime import Runtime
from batch_poller.supervisor import PassReport, Supervisor, daemon_owner
from batch_poller.systemd import Notifier, keep_watchdog_fed, watchdog_interval

log = structlog.get_logger("batch_poller")

# What a reload cannot change in a running process: it is logged as needing a restart.
NEEDS_RESTART = (
    "database.url",
    "logging.format",
    "logging.journal_socket",
    "http.enabled",
    "http.host",
    "http.port",
    "http.max_body_bytes",
)


class Daemon:
    def __init__(self, settings: Settings, explicit_config: str | None = None) -> None:
        self.settings = settings
        self.config_file: Path | None = config_path(explicit_config)
        self.notifier = Notifier()
        self._rt: Runtime | None = None
        self._supervisor: Supervisor | None = None
        self._reloading = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._admin_token = settings.admin_token()
        self.http: HttpServer | None = None

    async def run(self, *, once: bool = False) -> int:
        async with open_runtime(self.settings) as rt:  # the database is migrated in here
            self._rt = rt
            supervisor = self._supervisor = build_supervisor(rt, daemon_owner())
            supervisor.after_pass = self._after_pass
            if once:
                report = await supervisor.run_pass(check_all=True)
                log.info("pass_completed", **report.as_dict())
                return 0
            self._install_signal_handlers()
            if self.settings.http.enabled:
                self.http = await start_http(
                    supervisor, self.settings.http, lambda: self._admin_token
                )
                log.info("http_listening", url=self.http.url)
            loop_task = asyncio.create_task(supervisor.run(), name="supervisor")
            # The first pass is scheduled: systemd may now consider the service started.
            self.notifier.ready(await self._status_line())
            interval = watchdog_interval()
            if interval is not None and self.notifier.enabled:
                self._spawn(keep_watchdog_fed(self.notifier, interval))
            log.info("daemon_started", config=str(self.config_file), pid=os.getpid())
            await loop_task
            self.notifier.stopping()
            if self.http is not None:
                await self.http.close()
            log.info("daemon_stopped")
        for task in self._background:
            task.cancel()
        self.notifier.close()
        return 0

    # -- signals -----------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_stop_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))

    def _on_stop_signal(self, signum: int) -> None:
        assert self._rt is not None
        name = signal.Signals(signum).name
        if self._rt.stopping.is_set():
            # A second signal: the store's transactions keep it consistent, so leave now.
            log.warning("forced_stop", signal=name)
            os._exit(128 + signum)
        log.info("stopping", signal=name)
        self.notifier.stopping()
        self._rt.stopping.set()

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
                }
            )
            changed = _changed_keys(running, applied)
            self._rt.settings = applied
            self._admin_token = fresh.admin_token()
            configure_logging(
                applied.logging.level, applied.logging.format, applied.logging.journal_socket
            )
            if applied.poller.enabled != running.poller.enabled:
                (self._supervisor.resume if applied.poller.enabled else self._supervisor.pause)()
            log.info("reloaded", changed=changed)
            self.notifier.ready(await self._status_line())
            self._supervisor.wake()

    # -- status ------------------------------------------------------------------------------

    async def _after_pass(self, report: PassReport) -> None:
        self.notifier.status(await self._status_line(report))

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

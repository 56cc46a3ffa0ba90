"""systemd's notification protocol (sd_notify) and its watchdog. Silent when not under systemd."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("batch_poller.systemd")


class Notifier:
    """Sends `KEY=value` datagrams to $NOTIFY_SOCKET; does nothing when it is unset."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *fields: str) -> None:
        if self._socket is None:
            return
        try:
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as error:  # systemd went away or the queue is full: not worth dying for
            log.debug("sd_notify_failed", error=str(error))

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd (253+) match the reload to its own request.
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval() -> float | None:
    """Half of WATCHDOG_USEC, in seconds, when systemd asked this process for pings."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None


async def keep_watchdog_fed(
    notifier: Notifier, interval: float, wedged: Callable[[], str | None] = lambda: None
) -> None:
    """Pings from the event loop itself: if the loop is stuck, the pings stop and systemd acts.
    They stop too while `wedged` gives a reason: a loop that runs but whose passes have failed
    for too long is restarted by systemd as a stuck one would be."""
    withheld = False
    while True:
        reason = wedged()
        if reason is None:
            if withheld:
                log.info("watchdog_resumed")
                withheld = False
            notifier.send("WATCHDOG=1")
        elif not withheld:
            log.error("watchdog_withheld", reason=reason, detail="systemd will restart the daemon")
            notifier.status(f"failing: {reason}")
            withheld = True
        await asyncio.sleep(interval)

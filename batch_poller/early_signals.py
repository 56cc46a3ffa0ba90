"""SIGTERM and SIGINT from the first instant of `batch-poller run`. Importing the daemon takes a
second or two; a stop asked for meanwhile is remembered here, and the daemon, once its loop
runs, stops at once with exit status 0 instead of dying by the signal."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_OPTIONS_WITH_VALUES = ("--config", "--log-level")
_received: list[int] = []


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand in `batch-poller [options] COMMAND ...`, without parsing it fully."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _OPTIONS_WITH_VALUES:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def defer_stop_signals(argv: Sequence[str]) -> None:
    """For the `run` command only: every other command keeps the default handling."""
    if command_of(argv) == "run":
        for signum in STOP_SIGNALS:
            signal.signal(signum, _remember)


def _remember(signum: int, _frame: FrameType | None) -> None:
    if _received:  # a second signal: nothing has started yet, so leave now
        os._exit(128 + signum)
    _received.append(signum)


def stop_signal_received() -> int | None:
    """The stop signal that arrived before the daemon's own handlers, if one did."""
    return _received[0] if _received else None

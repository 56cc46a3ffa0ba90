"""The `batch-poller` command's entry point, kept free of heavy imports: a stop signal that
arrives while the daemon's modules load must still end in exit status 0."""

from __future__ import annotations

import sys

from batch_poller.early_signals import defer_stop_signals


def main() -> int:
    defer_stop_signals(sys.argv[1:])
    from batch_poller.cli import main as run_command

    return run_command()

"""What a command needs beyond the daemon's own dependencies, said in one line when missing."""

from __future__ import annotations

import importlib.util

from batch_poller.cli_errors import CommandError


class MissingExtra(CommandError):
    # The installation lacks what the command needs: restarting will not help (exit 78).
    exit_code = 78  # EX_CONFIG, as for a configuration error


def missing_extra(module: str, extra: str, needed_for: str) -> str | None:
    """Why `needed_for` cannot work here, or None when `module` is installed."""
    if importlib.util.find_spec(module) is not None:
        return None
    return (
        f"{needed_for} needs {module}, which is not installed: pip install 'batch-poller[{extra}]'"
    )


def require_extra(module: str, extra: str, needed_for: str) -> None:
    problem = missing_extra(module, extra, needed_for)
    if problem is not None:
        raise MissingExtra(problem)

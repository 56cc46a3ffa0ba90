"""What a command needs beyond the daemon's own dependencies, said in one line when missing."""

from __future__ import annotations

import importlib.util

from batch_poller.cli_errors import CommandError

# What else an extra brings that its commands import: moto alone, without its server extra's
# flask and flask-cors, imports but cannot start its server.
EXTRA_MODULES = {"emulator": ("moto", "flask", "flask_cors")}


class MissingExtra(CommandError):
    # The installation lacks what the command needs: restarting will not help (exit 78).
    exit_code = 78  # EX_CONFIG, as for a configuration error


def missing_extra(module: str, extra: str, needed_for: str) -> str | None:
    """Why `needed_for` cannot work here, or None when `module` and the rest of `extra` are
    installed."""
    for name in dict.fromkeys((module, *EXTRA_MODULES.get(extra, ()))):
        if not _installed(name):
            return (
                f"{needed_for} needs {name}, which is not installed: "
                f"pip install 'batch-poller[{extra}]'"
            )
    return None


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken module entry
        return False


def require_extra(module: str, extra: str, needed_for: str) -> None:
    problem = missing_extra(module, extra, needed_for)
    if problem is not None:
        raise MissingExtra(problem)

"""Which database URLs the store takes, checked without importing the store: a URL it cannot
use is a configuration error at load, not a crash (and a restart loop) when the daemon starts."""

from __future__ import annotations

from batch_poller.extras import missing_extra

# Users write plain URLs; the store only ever talks through the async drivers.
ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def database_url_problem(url: str) -> str | None:
    """Why the store cannot open this URL on this host, or None."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "it is not a URL: sqlite:///path/to/file.db or postgresql://user@host/database"
    if scheme not in ASYNC_DRIVERS:
        return f"the scheme {scheme!r} is not sqlite:// or postgresql://"
    if ASYNC_DRIVERS[scheme].startswith("sqlite"):
        return _sqlite_problem(rest)
    return _port_problem(rest) or missing_extra("asyncpg", "postgres", "a postgresql:// database")


def _sqlite_problem(rest: str) -> str | None:
    path = rest.partition("?")[0]
    if not path.startswith("/") or path in ("/", "/:memory:"):
        # An in-memory database would keep nothing, and each connection would see its own.
        return "SQLite needs a file: sqlite:///relative/file.db or sqlite:////absolute/file.db"
    return None


def _port_problem(rest: str) -> str | None:
    host = rest.rpartition("@")[2].partition("/")[0].partition("?")[0]
    if host.startswith("["):  # an IPv6 address: [::1]:5432
        host = host.partition("]")[2]
    port = host.rpartition(":")[2] if ":" in host else ""
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return f"the port {port!r} is not a number from 1 to 65535"
    return None

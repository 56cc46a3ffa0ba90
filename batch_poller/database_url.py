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
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in ASYNC_DRIVERS:
        return (
            f"the scheme {scheme!r} is not sqlite:// or postgresql://"
            if separator
            else ("it is not a URL: sqlite:///path/to/file.db or postgresql://user@host/database")
        )
    if ASYNC_DRIVERS[scheme.lower()].startswith("postgresql"):
        return missing_extra("asyncpg", "postgres", "a postgresql:// database")
    return None

"""The SQLite file the store opened, and whether it is still there.

A file deleted or replaced under a running daemon keeps taking its writes (its open handles
point at the old inode) while nothing of them will ever be read again: results "stored" there
are lost. Before the daemon trusts a write enough to delete the S3 copy, it checks that the
path still names the file it opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from batch_poller.store.engine import sqlite_file, to_async_url


class DatabaseFileGone(Exception):
    """The database file was deleted or replaced while open, or has another name; the message
    says which."""


def more_names(path: str, links: int) -> str:
    """Why a SQLite file with several hard links is refused: SQLite keeps its WAL and locks
    beside each name, so two processes that open it by two names write past each other, and the
    database is lost (checkpointed from an empty WAL over the real one)."""
    return (
        f"the database file {path} has {links} names (hard links): SQLite keeps its journal "
        "beside each name, so opening it by two names corrupts it; remove the other links and "
        "use one path"
    )


def refuse_linked_file(url: str) -> None:
    """ValueError when the SQLite file the URL names has more than one hard link."""
    path = sqlite_file(to_async_url(url))
    if path is None:
        return
    try:
        links = os.stat(path).st_nlink
    except OSError:
        return  # not there yet: SQLite creates it with one name
    if links > 1:
        raise ValueError(more_names(path, links))


@dataclass(frozen=True)
class DatabaseFile:
    path: str
    device: int
    inode: int

    @classmethod
    def of(cls, engine: AsyncEngine) -> DatabaseFile | None:
        """The file behind a SQLite engine, as it is now; None for PostgreSQL or in-memory."""
        path = sqlite_file(engine.url)
        if path is None:
            return None
        try:
            found = os.stat(path)
        except OSError:
            return None  # not created yet: there is nothing to lose
        return cls(path, found.st_dev, found.st_ino)

    def check(self) -> None:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            raise DatabaseFileGone(
                f"the database file {self.path} was deleted while the daemon had it open: "
                "what was written since is lost; restart the daemon"
            ) from None
        if (found.st_dev, found.st_ino) != (self.device, self.inode):
            raise DatabaseFileGone(
                f"the database file {self.path} was replaced while the daemon had it open: "
                "restart the daemon to use the new one"
            )
        if found.st_nlink > 1:
            raise DatabaseFileGone(more_names(self.path, found.st_nlink))

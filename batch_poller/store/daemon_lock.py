"""One daemon per SQLite file.

SQLite lets one writer into a file at a time, so a second daemon on it adds no throughput, only
contention: each waits on the other's writes, and a wait past the busy timeout fails a pass.
Several daemons belong on PostgreSQL. So the daemon holds an exclusive flock(2) on the database
file for its whole life, and a second one finds it taken and refuses to start. The kernel drops
the lock when its holder dies, even by SIGKILL, so a crash never leaves a stale lock behind, and
there is no lock file to clean up.

flock does not interact with the POSIX byte-range locks (fcntl) SQLite itself takes on Linux,
so the one-off commands (`track`, `jobs`, `process-completed`, ...) read and write beside a
running daemon as before; they never take this lock. (On NFS Linux emulates flock with POSIX
locks, but SQLite's WAL mode does not work on a network file system anyway.)

One care: closing any descriptor of a file drops every POSIX lock the process holds on it, the
locks of its own SQLite connections included (https://sqlite.org/howtocorrupt.html, 2.2). The
descriptor held here is therefore closed only once the store on that file is closed.

The holder's pid is read from /proc/locks, for the refusal to name it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.engine import URL

from batch_poller.store.engine import sqlite_file

PROC_LOCKS = Path("/proc/locks")


class DaemonLockError(Exception):
    """The database file could not be opened or locked; one line that names it."""


class DatabaseFileHeld(DaemonLockError):
    """Another daemon holds the database file; one line naming the file and the holder."""


class DaemonLock:
    """An open, read-only descriptor of the database file, locked by `take`."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def open(cls, url: URL) -> DaemonLock | None:
        """The descriptor for a SQLite file; None for PostgreSQL or an in-memory database."""
        path = sqlite_file(url)
        if path is None:
            return None
        path = os.path.abspath(path)
        try:
            # Read-only: the descriptor is only a handle for the lock, nothing is written.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            raise DaemonLockError(
                f"cannot open the database file {path} to lock it: {_reason(error)}"
            ) from None
        return cls(path, fd)

    def take(self) -> None:
        """Locks the file for this process; DatabaseFileHeld when another process has it."""
        assert self._fd is not None, "the lock was closed"
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                holder = flock_holder(self.path)
                who = "another process" if holder is None else f"another daemon (pid {holder})"
                raise DatabaseFileHeld(
                    f"{who} holds the database file {self.path}: one daemon per SQLite file "
                    "(stop it first, or use PostgreSQL to run several)"
                ) from None
            raise DaemonLockError(
                f"cannot lock the database file {self.path}: {_reason(error)}"
            ) from None

    def close(self) -> None:
        """Lets the lock go. Only once the store on the file is closed: see the module's doc."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _reason(error: OSError) -> str:
    return os.strerror(error.errno) if error.errno else str(error)


def flock_holder(path: str, locks: Path = PROC_LOCKS) -> int | None:
    """The pid holding an exclusive flock on the file, from /proc/locks; None when none is
    listed or its pid is not visible here (another pid namespace shows 0)."""
    try:
        found = os.stat(path)
        table = locks.read_text()
    except OSError:
        return None
    device = (os.major(found.st_dev), os.minor(found.st_dev))
    for line in table.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2146854 0 EOF"; a waiter's line has "->" after
        # the number and is not a holder.
        fields = line.split()
        if len(fields) < 6 or fields[1:4] != ["FLOCK", "ADVISORY", "WRITE"]:
            continue
        try:
            pid = int(fields[4])
            major, minor, inode = fields[5].split(":")
            where = (int(major, 16), int(minor, 16))
            number = int(inode)
        except ValueError:
            continue
        if where == device and number == found.st_ino and pid > 0:
            return pid
    return None


@contextlib.asynccontextmanager
async def closed_after(lock: DaemonLock | None) -> AsyncIterator[None]:
    """Closes the lock when the block ends. Entered before the store's context, it is left
    after it: the store is closed first."""
    try:
        yield
    finally:
        if lock is not None:
            lock.close()

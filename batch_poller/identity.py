"""Who this process is, among the daemons and commands that share one database: the name it
takes leases under, and what tells another process on the same machine whether it still runs."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Identity:
    host: str
    pid: int
    # Random, so a restarted process (same host, maybe the same pid) is a new owner: it never
    # mistakes the leases of the process it replaced for its own.
    token: str
    # Processes with the same key see each other's pids: the same kernel boot and pid namespace.
    local_key: str

    @property
    def owner(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"

    @classmethod
    def of_this_process(cls) -> Identity:
        return cls(socket.gethostname(), os.getpid(), secrets.token_hex(3), _local_key())


def _local_key() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        # Without them no other process can be judged by its pid: a key nobody shares.
        return f"unknown:{secrets.token_hex(8)}"
    return f"{socket.gethostname()}|{boot}|{namespace}"


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs here (one of another user's counts as alive). A
    zombie, killed but not yet reaped by its parent, is gone: it holds nothing and runs nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc to ask: alive, as the signal said
    # The state follows the command name, which is in parentheses and may hold spaces.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]

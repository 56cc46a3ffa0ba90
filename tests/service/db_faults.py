"""What the database fault tests need around a daemon: systemd's notify socket, a folder that
turns read-only, a small file system that fills up, and a PostgreSQL cluster of their own that
can be stopped and started (the machine's shared server is never touched)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Notifications(contextlib.AbstractContextManager["Notifications"]):
    """systemd's notify socket, as a datagram socket the test owns."""

    def __init__(self) -> None:
        # AF_UNIX paths are short (108 bytes): pytest's tmp_path can be longer.
        self.folder = Path(tempfile.mkdtemp(prefix="bp-", dir="/tmp"))
        self.path = self.folder / "notify"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(self.path))
        self.socket.setblocking(False)
        self.received: list[dict[str, str]] = []

    def env(self, watchdog_usec: int | None = None) -> dict[str, str]:
        env = {"NOTIFY_SOCKET": str(self.path)}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def messages(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.socket.recv(1 << 16)
            except BlockingIOError:
                return self.received
            self.received.append(dict(x.split("=", 1) for x in data.decode().splitlines()))

    def ready(self) -> bool:
        return any(m.get("READY") == "1" for m in self.messages())

    def count(self, key: str) -> int:
        return sum(key in m for m in self.messages())

    def __exit__(self, *_: object) -> None:
        self.socket.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root (mount); tests run as uid {os.geteuid()} here")


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({' '.join(args)}): {result.stderr.strip()}")


class ReadOnlySwitch:
    """Turns a folder read-only for every file opened from then on, and back. Files already
    open stay writable: what `chmod -R a-w` does to a daemon that does not run as root."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.read_only = False

    def on(self) -> None:
        _mount("--bind", "-o", "ro", str(self.folder), str(self.folder))
        self.read_only = True

    def off(self) -> None:
        # Lazily: files opened while it was read-only keep it alive, as they would keep their
        # read-only handles after a chmod back.
        subprocess.run(["umount", "-l", str(self.folder)], check=True)
        self.read_only = False


@contextlib.contextmanager
def read_only_bind(folder: Path) -> Iterator[ReadOnlySwitch]:
    _need_root("a read-only folder")
    switch = ReadOnlySwitch(folder)
    try:
        yield switch
    finally:
        if switch.read_only:
            switch.off()


@contextlib.contextmanager
def small_tmpfs(folder: Path, megabytes: int) -> Iterator[Path]:
    """A file system of a few megabytes at `folder`, to fill up."""
    _need_root("a full disk")
    _mount("-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


PG_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


class PrivateCluster:
    """A PostgreSQL cluster in a temporary folder on a free port, run by the postgres user."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.bin = PG_BINARIES[-1]

    @classmethod
    @contextlib.contextmanager
    def create(cls) -> Iterator[PrivateCluster]:
        _need_root("a private PostgreSQL cluster")
        if not PG_BINARIES:
            pytest.skip("PostgreSQL's server binaries are not installed (/usr/lib/postgresql)")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("there is no postgres user to run a cluster as")
        folder = Path(tempfile.mkdtemp(prefix="bp-pg-", dir="/tmp"))
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        cluster = cls(folder, free_port())
        try:
            cluster._as_postgres(
                "initdb", "-D", str(folder / "data"), "-A", "trust", "-U", "postgres", "--no-sync"
            )
            cluster.start()
            yield cluster
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                cluster.stop()
            shutil.rmtree(folder, ignore_errors=True)

    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, tool: str, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / tool), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            "pg_ctl", "-D", str(self.folder / "data"), "-o", options, "-l",
            str(self.folder / "log"), "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        if (self.folder / "data" / "postmaster.pid").exists():
            self._as_postgres("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

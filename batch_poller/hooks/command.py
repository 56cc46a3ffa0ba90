"""Sends an event to one command: the body on its standard input, key fields in its environment,
its exit status sorted into delivered, try again later, or give up."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
import re
import signal
from collections.abc import Mapping, Sequence

from batch_poller.hooks.event import Attempt, HookEvent

ENV_PREFIX = "BATCH_POLLER_"
# How much of the command's standard error is kept for the detail: its end, where the reason is.
STDERR_TAIL_BYTES = 2000
# Once the command has exited, how long its standard error may take to reach its end; a
# background process it left holding the pipe is not waited for.
_STDERR_GRACE_SECONDS = 1.0
# Failures to start that the next try would meet again.
_CANNOT_START = frozenset(
    {errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOEXEC, errno.ENOTDIR, errno.EISDIR}
)


class CommandSender:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        timeout_seconds: float,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        if not argv:
            raise ValueError(f"hook {name}: a command needs at least a program to run")
        self.name = name
        self.argv = tuple(argv)
        self.timeout_seconds = timeout_seconds
        self.environment = dict(environment or {})

    async def send(self, event: HookEvent) -> Attempt:
        # Pipes of our own rather than asyncio's: its wait() also waits for the pipes to close,
        # which a background process the command started can put off for as long as it runs.
        stdin_read, stdin_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=stdin_read,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr_write,
                env=command_environment(event, self.environment),
                # Its own session and process group, so a timeout kills whatever it started too.
                start_new_session=True,
            )
        except (OSError, ValueError) as error:
            os.close(stdin_write)
            os.close(stderr_read)
            return _cannot_start(self.argv[0], error)
        finally:
            # The child has its own copies; ours would keep its ends of the pipes open.
            os.close(stdin_read)
            os.close(stderr_write)
        return await self._converse(process, event.body, stdin_write, stderr_read)

    async def close(self) -> None:
        return None

    async def _converse(
        self, process: asyncio.subprocess.Process, body: bytes, stdin_fd: int, stderr_fd: int
    ) -> Attempt:
        loop = asyncio.get_running_loop()
        # Owned by their transports once these exist, closed by _release until then.
        stdin = os.fdopen(stdin_fd, "wb", buffering=0)
        stderr = os.fdopen(stderr_fd, "rb", buffering=0)
        stdin_transport: asyncio.WriteTransport | None = None
        stderr_transport: asyncio.ReadTransport | None = None
        try:
            stderr_transport, tail = await loop.connect_read_pipe(_Tail, stderr)
            stdin_transport, _ = await loop.connect_write_pipe(asyncio.Protocol, stdin)
            # Buffered by the transport and written as the command reads; closing after the
            # last byte is its end of file. A command that exits unread only stops the writing.
            stdin_transport.write(body)
            stdin_transport.close()
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    returncode = await process.wait()
            except TimeoutError:
                _kill_group(process)
                await process.wait()
                return Attempt(
                    delivered=False,
                    retry=True,
                    detail=f"timed out after {self.timeout_seconds:g} s, killed",
                )
            await asyncio.wait([tail.ended], timeout=_STDERR_GRACE_SECONDS)
            return _exited(returncode, tail.text())
        finally:
            if process.returncode is None:  # cancelled: the command goes with the delivery
                _kill_group(process)
                await process.wait()
            _release(stdin_transport, stdin)
            _release(stderr_transport, stderr)


class _Tail(asyncio.Protocol):
    """Keeps the last STDERR_TAIL_BYTES a pipe brings; `ended` is done at its end."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data
        del self.data[:-STDERR_TAIL_BYTES]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(None)

    def text(self) -> str:
        return " ".join(self.data.decode(errors="replace").split())


def command_environment(event: HookEvent, extra: Mapping[str, str]) -> dict[str, str]:
    """The daemon's environment, the hook's own variables, then the event's: BATCH_POLLER_EVENT_ID,
    BATCH_POLLER_EVENT_TYPE and BATCH_POLLER_<FIELD> for each of its fields."""
    environment = {**os.environ, **extra}
    for field, value in event.fields.items():
        environment[ENV_PREFIX + _variable_name(field)] = value
    environment[ENV_PREFIX + "EVENT_ID"] = event.id
    environment[ENV_PREFIX + "EVENT_TYPE"] = event.type
    return environment


def _variable_name(field: str) -> str:
    # A shell can only name letters, digits and underscores.
    return re.sub(r"[^A-Z0-9_]", "_", field.upper())


def _release(transport: asyncio.BaseTransport | None, pipe: io.FileIO) -> None:
    if transport is None:
        pipe.close()
    elif isinstance(transport, asyncio.WriteTransport):
        # Still closing with bytes unsent: the command exited without reading them all.
        if not transport.is_closing() or transport.get_write_buffer_size() > 0:
            transport.abort()
    else:
        transport.close()


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # The group carries the child's pid (its own session), and lives on after the child is reaped
    # for as long as anything it started does.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _exited(returncode: int, stderr: str) -> Attempt:
    if returncode == 0:
        return Attempt(delivered=True, retry=False, detail="exit 0")
    if returncode < 0:
        try:
            how = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    else:
        how = f"exit {returncode}"
    return Attempt(delivered=False, retry=True, detail=f"{how}: {stderr}" if stderr else how)


def _cannot_start(program: str, error: OSError | ValueError) -> Attempt:
    # Too many processes or open files passes; a missing or unrunnable program does not.
    transient = isinstance(error, OSError) and error.errno not in _CANNOT_START
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return Attempt(delivered=False, retry=transient, detail=f"cannot run {program}: {reason}")

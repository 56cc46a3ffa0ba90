"""structlog set-up: key=value lines on a terminal, JSON lines elsewhere, and journald's native
protocol under systemd, with every key of an event as a field journalctl can filter on."""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys
from collections.abc import MutableMapping
from typing import Any, Literal


def _import_structlog_without_rich() -> None:
    """structlog imports rich, if it is installed, to draw logged exceptions in colour, and
    rich brings pygments: some 3 MB the daemon never runs, since its exceptions are logged as
    plain tracebacks (configure_logging). rich is hidden from that first import only; the
    commands that draw tables import it as usual."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` fails meanwhile
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_import_structlog_without_rich()
import structlog  # noqa: E402

LogFormat = Literal["auto", "console", "json", "journald"]
JOURNAL_SOCKET = "/run/systemd/journal/socket"
PRIORITIES = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}
_FIELD_VALUE_LIMIT = 64 * 1024


# Fields of this process that every entry carries (the replica's name), whatever task, signal
# handler or thread logs it: set once the process knows them.
_PROCESS_FIELDS: dict[str, Any] = {}


def set_process_field(name: str, value: Any) -> None:
    _PROCESS_FIELDS[name] = value


def _add_process_fields(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name, value in _PROCESS_FIELDS.items():
        event.setdefault(name, value)
    return event


def configure_logging(
    level: str = "INFO", fmt: LogFormat | None = "auto", journal_socket: str = JOURNAL_SOCKET
) -> str:
    """Sets structlog up and returns the format chosen ("auto" resolved)."""
    chosen = choose_format(fmt or "auto")
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_process_fields,
        structlog.processors.add_log_level,
    ]
    logger_factory: Any
    if chosen == "journald":
        processors += [structlog.processors.format_exc_info, journal_fields]
        sender = JournalSender(journal_socket)
        logger_factory = lambda *_: JournalLogger(sender)  # noqa: E731
    else:
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            )
            if chosen == "console"
            else structlog.processors.JSONRenderer(),
        ]
        # sys.stderr is looked up per logger, not fixed at set-up: it may be replaced later.
        logger_factory = lambda *_: structlog.PrintLogger(sys.stderr)  # noqa: E731
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=logger_factory,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    return chosen


def choose_format(fmt: LogFormat) -> str:
    if fmt != "auto":
        return fmt
    if _stream_is_journal():
        return "journald"
    return "console" if sys.stderr.isatty() else "json"


def _stream_is_journal() -> bool:
    """systemd sets JOURNAL_STREAM to the device:inode of the stream it connected us to."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    for fd in (1, 2):
        try:
            info = os.fstat(fd)
        except OSError:
            continue
        if expected == f"{info.st_dev}:{info.st_ino}":
            return True
    return False


def journal_fields(_logger: Any, method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """An event as journald fields: MESSAGE, PRIORITY, EVENT, JOB_ARN and every other key."""
    name = str(event.pop("event", ""))
    level = str(event.pop("level", method))
    details = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("exception", "job_arn"))
    fields = {
        "MESSAGE": f"{name} {details}".strip(),
        "PRIORITY": str(PRIORITIES.get(level, 6)),
        "SYSLOG_IDENTIFIER": "batch-poller",
        "EVENT": name,
    }
    for key, value in event.items():
        fields[field_name(key)] = str(value)
    return {"fields": fields}


def field_name(key: str) -> str:
    """journald field names: upper case letters, digits and underscores, not starting with _."""
    name = re.sub(r"[^A-Z0-9_]", "_", key.upper()).lstrip("_0123456789")
    return name[:64] or "FIELD"


def encode_fields(fields: dict[str, str]) -> bytes:
    """journald's native datagram: KEY=value lines, or KEY, length, value for multi-line values."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", errors="replace")[:_FIELD_VALUE_LIMIT]
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalSender:
    def __init__(self, path: str) -> None:
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def send(self, fields: dict[str, str]) -> None:
        try:
            self._socket.sendto(encode_fields(fields), self.path)
        except OSError:
            # journald is unreachable: the line goes to stderr rather than nowhere.
            print(fields.get("MESSAGE", ""), file=sys.stderr, flush=True)


class JournalLogger:
    """The structlog logger behind the journald format: one datagram per event."""

    def __init__(self, sender: JournalSender) -> None:
        self._sender = sender

    def msg(self, fields: dict[str, str]) -> None:
        self._sender.send(fields)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg

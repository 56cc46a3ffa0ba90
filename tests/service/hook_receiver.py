"""A real HTTP receiver for webhook tests, in a thread of the test process (the daemon under
test is another process): it keeps every request it was sent and answers from a script."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


@dataclass
class Receiver:
    """Answers each request with the next status of `script` (200 once it runs out). While
    `hold` is clear a request waits for it (at most `hold_seconds`) before its answer."""

    port: int
    script: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    hold_seconds: float = 30.0
    holding: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.hold.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/batch"

    def events(self, answered: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r.event for r in self.received if answered in (None, r.answered)]

    def _answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.holding += 1
        try:
            self.hold.wait(self.hold_seconds)
        finally:
            with self.lock:
                self.holding -= 1
        with self.lock:
            status = self.script.pop(0) if self.script else 200
            self.received.append(Received(headers, body, status))
        return status


def free_port() -> int:
    """A port nobody listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def receiving(receiver: Receiver) -> Iterator[Receiver]:
    """Serves the receiver on its port until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver._answer(dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(10)

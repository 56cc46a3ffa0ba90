"""A fault proxy for HTTP/1.1 between a client and S3 or Bedrock (standard library only).

It relays requests one at a time per connection (keep-alive, as botocore's aiohttp client
sends them) and, by a seeded draw per request, answers 503 SlowDown itself, holds a response
back, cuts the connection after some response bytes, or sends fewer body bytes than its
Content-Length promised. The faults are a plain value: assign `proxy.faults` at any time.

Requests are relayed whole, so a client that waits for `100 Continue` before sending its body
is not supported; the daemon only reads, lists and deletes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    b"<RequestId>FAULTPROXY</RequestId></Error>"
)
SERVER_ERROR_BODY = b'{"message":"An internal error occurred (fault proxy)."}'
RELAY_PIECE = 64 * 1024


@dataclass(frozen=True)
class Faults:
    """Shares of requests that meet each fault; the draws come from the proxy's seed."""

    slowdown_rate: float = 0.0  # answered 503 SlowDown (S3's XML) by the proxy, never forwarded
    server_error_rate: float = 0.0  # answered 500 InternalServerException (Bedrock's JSON)
    stall_rate: float = 0.0  # the response is held back stall_seconds before it is relayed
    stall_seconds: float = 0.0
    reset_rate: float = 0.0  # the connection is cut after reset_after_bytes response bytes
    reset_after_bytes: int = 0
    truncate_rate: float = 0.0  # half the body is sent, then the connection is closed
    # Only requests whose method and path match meet faults; None matches every request.
    method: str | None = None
    path_contains: str | None = None

    def applies_to(self, method: str, path: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        return self.path_contains is None or self.path_contains in path


NO_FAULTS = Faults()


@dataclass
class Message:
    """The head of a request or response: its first line, headers, and the raw bytes."""

    first_line: str
    headers: dict[str, str]
    raw: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class FaultProxy:
    def __init__(self, target: str, faults: Faults = NO_FAULTS, seed: int = 0) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults = faults
        self.counts: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the proxy first"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    # -- one client connection ---------------------------------------------------------------

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        upstream_out: asyncio.StreamWriter | None = None
        try:
            upstream_in, upstream_out = await asyncio.open_connection(*self._target)
            while await self._relay_one(client_in, client_out, upstream_in, upstream_out):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # either side went away: so does the other
        finally:
            self._connections.discard(task)
            client_out.close()
            if upstream_out is not None:
                upstream_out.close()

    async def _relay_one(
        self,
        client_in: asyncio.StreamReader,
        client_out: asyncio.StreamWriter,
        upstream_in: asyncio.StreamReader,
        upstream_out: asyncio.StreamWriter,
    ) -> bool:
        """Relays one exchange; False once the connection is to be closed."""
        request = await read_head(client_in)
        if request is None:
            return False
        body = b"".join([piece async for piece in body_pieces(client_in, request, None)])
        method, path = request.first_line.split(" ")[:2]
        self.counts["requests"] += 1
        faults = self.faults
        fault = self._draw(faults) if faults.applies_to(method, path) else None
        if fault in ("slowdown", "server_error"):
            self.counts[fault] += 1
            client_out.write(
                slowdown_response() if fault == "slowdown" else server_error_response()
            )
            await client_out.drain()
            return True
        upstream_out.write(request.raw + body)
        await upstream_out.drain()
        response = await read_head(upstream_in)
        if response is None:
            return False
        if fault == "stall":
            self.counts[fault] += 1
            await asyncio.sleep(faults.stall_seconds)
        length = int(response.header("content-length") or 0)
        if fault == "truncate" and length > 1 and not _has_no_body(response, method):
            self.counts[fault] += 1
            client_out.write(response.raw + await upstream_in.readexactly(length // 2))
            await client_out.drain()
            return False
        budget = faults.reset_after_bytes if fault == "reset" else None
        pieces = body_pieces(upstream_in, response, method)
        if not await _send_within(client_out, response.raw, pieces, budget):
            self.counts["reset"] += 1
            client_out.transport.abort()  # an RST, as a dropped connection looks
            return False
        return (response.header("connection") or "").lower() != "close"

    def _draw(self, faults: Faults) -> str | None:
        roll = self._random.random()
        for name, rate in (
            ("slowdown", faults.slowdown_rate),
            ("server_error", faults.server_error_rate),
            ("stall", faults.stall_rate),
            ("reset", faults.reset_rate),
            ("truncate", faults.truncate_rate),
        ):
            if roll < rate:
                return name
            roll -= rate
        return None


async def _send_within(
    out: asyncio.StreamWriter, head: bytes, pieces: AsyncIterator[bytes], budget: int | None
) -> bool:
    """Sends the head and the body; False if the budget of bytes ran out first."""
    async for data in _after(head, pieces):
        if budget is not None and len(data) >= budget:
            out.write(data[:budget])
            await out.drain()
            return False
        if budget is not None:
            budget -= len(data)
        out.write(data)
        await out.drain()
    return True


async def _after(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for piece in rest:
        yield piece


# -- HTTP/1.1 framing ---------------------------------------------------------------------------


async def read_head(reader: asyncio.StreamReader) -> Message | None:
    """The next message head, or None if the peer closed the connection between messages."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise
        return None
    first_line, *lines = raw.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return Message(first_line, headers, raw)


async def body_pieces(
    reader: asyncio.StreamReader, head: Message, request_method: str | None
) -> AsyncIterator[bytes]:
    """The body's raw bytes as framed on the wire (chunked framing included), in pieces.

    `request_method` is None for a request, else the method the response answers.
    """
    if request_method is not None and _has_no_body(head, request_method):
        return
    if "chunked" in (head.header("transfer-encoding") or "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            yield size_line
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                # Trailers, if any, end with an empty line.
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    yield line
                yield line
                return
            yield await reader.readexactly(size + 2)
    length = head.header("content-length")
    if length is None:
        if request_method is None:
            return  # a request without a length has no body
        while piece := await reader.read(RELAY_PIECE):  # a response that ends at close
            yield piece
        return
    left = int(length)
    while left > 0:
        piece = await reader.read(min(left, RELAY_PIECE))
        if not piece:
            raise asyncio.IncompleteReadError(b"", left)
        left -= len(piece)
        yield piece


def _has_no_body(response: Message, request_method: str) -> bool:
    status = int(response.first_line.split(" ")[1])
    return request_method == "HEAD" or status in (204, 304) or 100 <= status < 200


def slowdown_response() -> bytes:
    head = (
        "HTTP/1.1 503 Slow Down\r\n"
        "Content-Type: application/xml\r\n"
        f"Content-Length: {len(SLOWDOWN_BODY)}\r\n"
        "x-amz-request-id: FAULTPROXY\r\n"
        "\r\n"
    )
    return head.encode() + SLOWDOWN_BODY


def server_error_response() -> bytes:
    head = (
        "HTTP/1.1 500 Internal Server Error\r\n"
        "Content-Type: application/json\r\n"
        "x-amzn-ErrorType: InternalServerException\r\n"
        f"Content-Length: {len(SERVER_ERROR_BODY)}\r\n"
        "\r\n"
    )
    return head.encode() + SERVER_ERROR_BODY


# -- a proxy beside a test that blocks -----------------------------------------------------------


@contextlib.contextmanager
def proxy_in_thread(target: str, faults: Faults = NO_FAULTS, seed: int = 0) -> Iterator[FaultProxy]:
    """The proxy on an event loop of its own thread: a test that waits on a process (and so
    blocks its own loop) does not hold the daemon's requests back."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
    thread.start()
    proxy = FaultProxy(target, faults, seed)
    try:
        asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(timeout=10)
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

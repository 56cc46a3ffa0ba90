"""The connections under the admin API: aiohttp's handler with the bounds it lacks, so a slow or
hostile client cannot hold the daemon's sockets. A request line and headers must arrive within
[http] header_timeout_seconds of the connection opening or of their first byte; at most
[http] max_connections are open at once; a request that cannot be read gets a JSON answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from aiohttp.streams import StreamReader

from batch_poller.config import HttpSettings

# An idle keep-alive connection, waiting for the first byte of its next request, is closed
# after this long (aiohttp's own default is an hour).
IDLE_KEEPALIVE_SECONDS = 75.0


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    max_connections: int

    @classmethod
    def of(cls, settings: HttpSettings) -> ConnectionLimits:
        return cls(settings.header_timeout_seconds, settings.max_connections)


def raw_problem(status: int, detail: str) -> bytes:
    """A whole HTTP response written straight to the socket, for the moments when no request
    exists to answer through aiohttp."""
    phrase = HTTPStatus(status).phrase
    body = orjson.dumps({"error": phrase.lower(), "detail": detail})
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class BoundedRequestHandler(web.RequestHandler):
    def __init__(self, server: web.Server, *, limits: ConnectionLimits, **options: Any) -> None:
        super().__init__(server, **options)
        self._web_server = server
        self._limits = limits
        self.header_deadline: asyncio.TimerHandle | None = None
        # The body of the last request whose headers arrived: until it is complete, bytes that
        # arrive are that body, not the start of a new request.
        self._last_body: StreamReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if len(self._web_server.connections) > self._limits.max_connections:
            self._answer_and_close(
                503, f"over {self._limits.max_connections} connections are open; try again later"
            )
            return
        # A fresh connection is waiting for its first request: the clock starts now.
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        if self._request_count > parsed:
            # Headers are complete; a body may follow at its own pace.
            self._disarm_header_deadline()
            self._last_body = self._messages[-1][1] if self._messages else None
        elif data and self.header_deadline is None and self._between_requests():
            self._arm_header_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        # A request the parser refused is the client's mistake: a JSON answer, no traceback.
        detail = (message or HTTPStatus(status).description)[:200]
        response = web.json_response(
            {"error": HTTPStatus(status).phrase.lower(), "detail": f"unreadable request: {detail}"},
            status=status,
        )
        response.force_close()
        return response

    def _between_requests(self) -> bool:
        return self._last_body is None or self._last_body.is_eof()

    def _arm_header_deadline(self) -> None:
        self.header_deadline = self._loop.call_later(
            self._limits.header_timeout, self._headers_too_late
        )

    def _disarm_header_deadline(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _headers_too_late(self) -> None:
        self.header_deadline = None
        if self._waiter is not None and not self._waiter.done():
            self._answer_and_close(
                408,
                f"the request line and headers did not arrive within "
                f"{self._limits.header_timeout:g} s",
            )
        else:
            # A response is being written: end the connection once it is sent.
            self.close()

    def _answer_and_close(self, status: int, detail: str) -> None:
        if self.transport is not None:
            self.transport.write(raw_problem(status, detail))
        self.force_close()


class BoundedSite(web.BaseSite):
    """A TCP site whose connections are BoundedRequestHandlers."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, limits: ConnectionLimits):
        super().__init__(runner)
        self._host = host
        self._port = port
        self._limits = limits

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None

        def handler() -> BoundedRequestHandler:
            return BoundedRequestHandler(
                server,
                loop=loop,
                limits=self._limits,
                access_log=None,
                keepalive_timeout=IDLE_KEEPALIVE_SECONDS,
            )

        self._server = await loop.create_server(
            handler, self._host, self._port, backlog=self._backlog
        )

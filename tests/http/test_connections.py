"""Connection bounds on a real socket: a request whose headers do not arrive in time is
answered 408 and closed, headers that did arrive stop the clock, and connections beyond
[http] max_connections are answered 503. Timeouts are set small; every wait ends on the
server's answer or close, the deadline in tests/http/raw.py only bounds a hang."""

from __future__ import annotations

import asyncio

import pytest

from batch_poller.http.connections import BoundedRequestHandler
from tests.http.conftest import Admin, AdminFactory
from tests.http.raw import HANG, open_raw, parse_answer, read_until_closed

KEEP_ALIVE_GET = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    """One response with a Content-Length body, leaving the connection open."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await asyncio.wait_for(reader.readexactly(length), HANG)


def _handlers(admin: Admin) -> list[BoundedRequestHandler]:
    server = admin.server.runner.server
    assert server is not None
    handlers = server.connections
    assert all(isinstance(h, BoundedRequestHandler) for h in handlers)
    return handlers  # type: ignore[return-value]


@pytest.mark.parametrize(
    "partial",
    [
        pytest.param(b"GET /healthz HT", id="half a request line"),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n", id="no blank line"
        ),
    ],
)
async def test_an_unfinished_request_head_is_answered_408_and_closed(
    make_admin: AdminFactory, partial: bytes
) -> None:
    admin = await make_admin(header_timeout_seconds=0.2)
    reader, writer = await open_raw(admin.server.url)
    writer.write(partial)
    await writer.drain()

    answer = parse_answer(await read_until_closed(reader))

    assert answer.status == 408
    assert answer.headers["connection"] == "close"
    assert "did not arrive within 0.2 s" in answer.json()["detail"]
    assert reader.at_eof()
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed(make_admin: AdminFactory) -> None:
    admin = await make_admin(header_timeout_seconds=0.2)
    reader, writer = await open_raw(admin.server.url)

    answer = parse_answer(await read_until_closed(reader))

    assert answer.status == 408
    writer.close()


async def test_complete_headers_stop_the_clock_and_the_next_request_starts_it(
    make_admin: AdminFactory,
) -> None:
    admin = await make_admin(header_timeout_seconds=0.2)
    reader, writer = await open_raw(admin.server.url)
    writer.write(KEEP_ALIVE_GET)
    await writer.drain()
    first = parse_answer(await _read_response(reader))
    [handler] = _handlers(admin)
    idle_deadline = handler.header_deadline

    writer.write(b"GET /healthz HTTP/1.1\r\nHo")  # the next request, cut short
    await writer.drain()
    second = parse_answer(await read_until_closed(reader))

    assert first.status == 200
    assert idle_deadline is None  # kept alive and idle: only the keep-alive bound applies
    assert second.status == 408
    writer.close()


async def test_a_slow_body_is_not_cut_by_the_header_deadline(admin: Admin) -> None:
    reader, writer = await open_raw(admin.server.url)
    body = b'{"force": false}'
    writer.write(
        b"POST /api/batch/jobs/unknown/cleanup HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    await writer.drain()
    # 100 Continue: the server has the headers and waits for the body.
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)
    [handler] = _handlers(admin)
    deadline_while_reading_the_body = handler.header_deadline
    writer.write(body)
    await writer.drain()
    answer = parse_answer(await _read_response(reader))

    assert interim.startswith(b"HTTP/1.1 100")
    assert deadline_while_reading_the_body is None
    assert answer.status == 401  # reached the token guard: the request was read whole
    writer.close()


async def test_connections_over_the_limit_are_answered_503(make_admin: AdminFactory) -> None:
    admin = await make_admin(max_connections=2)
    held = [await open_raw(admin.server.url) for _ in range(2)]
    for reader, writer in held:
        writer.write(KEEP_ALIVE_GET)
        await writer.drain()
        assert parse_answer(await _read_response(reader)).status == 200

    reader, writer = await open_raw(admin.server.url)
    answer = parse_answer(await read_until_closed(reader))

    assert answer.status == 503
    assert "over 2 connections" in answer.json()["detail"]
    still_served = held[0]
    still_served[1].write(KEEP_ALIVE_GET)
    assert parse_answer(await _read_response(still_served[0])).status == 200
    for _, held_writer in held:
        held_writer.close()
    writer.close()


async def test_an_unreadable_request_gets_a_json_answer(admin: Admin) -> None:
    reader, writer = await open_raw(admin.server.url)
    writer.write(b"\x16\x03\x01 not http\r\n\r\n")
    await writer.drain()

    answer = parse_answer(await read_until_closed(reader))

    assert answer.status == 400
    assert answer.json()["error"] == "bad request"
    writer.close()

"""Raw HTTP/1.1 over a socket, for requests an HTTP client would refuse to send."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Bounds a hang only: every wait below ends on an event (bytes, or the server's close).
HANG = 10.0


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_answer(data: bytes) -> RawAnswer:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(status_line.split()[1]), headers, body)


async def open_raw(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return await asyncio.open_connection(parts.hostname, parts.port)


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), HANG)


async def raw_request(url: str, request: bytes) -> RawAnswer:
    """Sends the bytes as they are; the request should ask for `Connection: close`."""
    reader, writer = await open_raw(url)
    try:
        writer.write(request)
        await writer.drain()
        return parse_answer(await read_until_closed(reader))
    finally:
        writer.close()

"""The daemon's HTTP server on a free loopback port, over a runtime on the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from batch_poller.config import HttpSettings
from batch_poller.http.server import HttpServer, start_http
from batch_poller.runtime import Runtime
from batch_poller.supervisor import Supervisor

TOKEN = "s3cret-admin-token"


@dataclass
class Admin:
    server: HttpServer
    http: aiohttp.ClientSession
    token: dict[str, str]

    async def call(
        self, method: str, path: str, *, auth: str | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if auth is not None:
            headers["Authorization"] = auth
        async with self.http.request(
            method, self.server.url + path, headers=headers, **kwargs
        ) as response:
            text = await response.text()
            try:
                import json

                return response.status, json.loads(text)
            except ValueError:
                return response.status, text


AdminFactory = Callable[..., Any]


@pytest.fixture
async def make_admin(supervisor: Supervisor, runtime: Runtime) -> AsyncIterator[AdminFactory]:
    servers: list[HttpServer] = []
    sessions: list[aiohttp.ClientSession] = []

    async def make(token: str = TOKEN, **http: Any) -> Admin:
        settings = HttpSettings(host="127.0.0.1", port=0, **http)
        server = await start_http(supervisor, settings, lambda: token)
        servers.append(server)
        session = aiohttp.ClientSession()
        sessions.append(session)
        return Admin(server, session, {"token": token})

    yield make
    for session in sessions:
        await session.close()
    for server in servers:
        await server.close()


@pytest.fixture
async def admin(make_admin: AdminFactory) -> Admin:
    return await make_admin()


BEARER = f"Bearer {TOKEN}"


async def every_page(admin: Admin, path: str, limit: int) -> list[dict[str, Any]]:
    """Every page of a records endpoint, each asked for with the page before's cursor."""
    pages, cursor = [], ""
    while True:
        query = f"?limit={limit}&cursor={cursor}" if cursor else f"?limit={limit}"
        code, page = await admin.call("GET", f"{path}{query}")
        assert code == 200, page
        pages.append(page)
        if page["next_cursor"] is None:
            return pages
        cursor = page["next_cursor"]

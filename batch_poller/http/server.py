"""Builds the daemon's aiohttp application and binds it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from batch_poller.config import HttpSettings
from batch_poller.http.api import CONTEXT, AdminContext, add_routes
from batch_poller.http.auth import security_headers, token_guard
from batch_poller.http.connections import BoundedSite, ConnectionLimits
from batch_poller.http.errors import json_errors
from batch_poller.http.hosts import host_guard
from batch_poller.supervisor import Supervisor


def build_http_app(
    supervisor: Supervisor, settings: HttpSettings, current_token: Callable[[], str]
) -> web.Application:
    app = web.Application(
        middlewares=[
            security_headers,
            host_guard(settings),
            json_errors,
            token_guard(current_token, settings.loopback),
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[CONTEXT] = AdminContext(supervisor)
    add_routes(app)
    return app


@dataclass
class HttpServer:
    runner: web.AppRunner
    url: str

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_http(
    supervisor: Supervisor, settings: HttpSettings, current_token: Callable[[], str]
) -> HttpServer:
    runner = web.AppRunner(
        build_http_app(supervisor, settings, current_token), access_log=None, shutdown_timeout=5
    )
    await runner.setup()
    site = BoundedSite(runner, settings.host, settings.port, ConnectionLimits.of(settings))
    try:
        await site.start()
    except BaseException:  # a port in use, an address not here: nothing is left half open
        await runner.cleanup()
        raise
    host, port = runner.addresses[0][:2]
    shown = f"[{host}]" if ":" in host else host
    return HttpServer(runner, f"http://{shown}:{port}")

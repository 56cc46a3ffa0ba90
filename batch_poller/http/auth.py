"""Who may do what: reading is open on a loopback address; every request that changes
something, and on any other address every API request, needs the admin bearer token."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from batch_poller.http.errors import Handler, problem

OPEN_PATHS = frozenset({"/healthz"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HOW_TO_SET = "set [http] admin_token_file or BATCH_POLLER_HTTP__ADMIN_TOKEN and reload"


def token_guard(current_token: Callable[[], str], loopback: bool) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _needs_token(request, loopback):
            token = current_token()
            if not token:
                return problem(403, "forbidden", f"no admin token is configured: {HOW_TO_SET}")
            if not _presented(request, token):
                return problem(
                    401,
                    "unauthorized",
                    "send the admin token as 'Authorization: Bearer <token>'",
                    {"WWW-Authenticate": 'Bearer realm="batch-poller"'},
                )
        return await handler(request)

    return guard


def _needs_token(request: web.Request, loopback: bool) -> bool:
    if request.path in OPEN_PATHS:
        return False
    if request.match_info.http_exception is not None:
        # No such path or method: the answer is 404 or 405 and runs no handler.
        return False
    if request.method not in SAFE_METHODS:
        return True
    # The page's files carry no data; the data behind it is guarded like the API.
    return not loopback and (request.path.startswith("/api/") or request.path == "/metrics")


def _presented(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Compared in constant time, so the token cannot be guessed byte by byte.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    )
    response.headers.setdefault("Cache-Control", "no-store")
    return response

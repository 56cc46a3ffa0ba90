"""Every error as JSON `{"error": ..., "detail": ...}` with the right status; no stack trace
ever reaches a client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

log = structlog.get_logger("batch_poller.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def bad_request(detail: str) -> ApiError:
    return ApiError(400, "bad request", detail)


def not_found(detail: str) -> ApiError:
    return ApiError(404, "not found", detail)


def conflict(detail: str) -> ApiError:
    return ApiError(409, "conflict", detail)


def problem(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return problem(error.status, error.error, error.detail)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        # Headers that are part of the answer stay (Allow on a 405); the body becomes JSON.
        kept = {
            name: value
            for name, value in error.headers.items()
            if name.lower() not in ("content-type", "content-length")
        }
        return problem(error.status, error.reason.lower(), error.text or error.reason, kept)
    except Exception:
        log.exception("http_handler_failed", path=request.path, method=request.method)
        return problem(500, "internal error", "the daemon could not answer; see its log")

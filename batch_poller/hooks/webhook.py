"""Sends an event to one webhook: a signed POST, its answer sorted into delivered, try again
later, or give up."""

from __future__ import annotations

import email.utils
import errno
import time
from collections.abc import Callable

import aiohttp

from batch_poller.hooks.event import Attempt, HookEvent
from batch_poller.hooks.signing import signed_headers

USER_AGENT = "batch-poller-hooks/1"
# How much of a refusal's body goes into the detail; the rest is never read.
BODY_EXCERPT_BYTES = 200
_DETAIL_CHARS = 300


class WebhookSender:
    def __init__(
        self,
        name: str,
        url: str,
        secret: str,
        timeout_seconds: float,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.url = url
        self.secret = secret
        self.timeout_seconds = timeout_seconds
        self._now = now
        self._session: aiohttp.ClientSession | None = None

    async def send(self, event: HookEvent) -> Attempt:
        headers = signed_headers(self.secret, event, int(self._now()))
        try:
            async with self._client().post(
                self.url, data=event.body, headers=headers, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return Attempt(delivered=True, retry=False, detail=f"HTTP {response.status}")
                return await _refused(response)
        # First: aiohttp's timeouts are also OSErrors and ClientErrors.
        except TimeoutError:
            return Attempt(
                delivered=False,
                retry=True,
                detail=f"timed out after {self.timeout_seconds:g} s",
            )
        except aiohttp.InvalidURL as error:
            return Attempt(delivered=False, retry=False, detail=f"invalid URL: {error}")
        except (aiohttp.ClientError, OSError) as error:
            return Attempt(delivered=False, retry=True, detail=_network_failure(error))

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop; one session, so connections are reused.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session


async def _refused(response: aiohttp.ClientResponse) -> Attempt:
    status = response.status
    if 300 <= status < 400:
        detail = f"HTTP {status}: redirects are not followed; point the hook at the final URL"
        return Attempt(delivered=False, retry=False, detail=detail)
    excerpt = _one_line((await _head(response.content)).decode(errors="replace"))
    detail = f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}"
    # A client error other than a timeout or throttling will be the same next time; a status
    # outside the standard ranges is nothing to give up on.
    retry = status in (408, 429) or not 400 <= status < 500
    wait = retry_after(response.headers.get("Retry-After"), time.time()) if retry else None
    return Attempt(delivered=False, retry=retry, detail=detail, retry_after=wait)


def retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now: a number of seconds, or an HTTP date; None when it is
    absent or neither."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


async def _head(content: aiohttp.StreamReader) -> bytes:
    """The body's first bytes, at most BODY_EXCERPT_BYTES; an unread rest closes the connection."""
    head = b""
    while len(head) < BODY_EXCERPT_BYTES:
        chunk = await content.read(BODY_EXCERPT_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    return head


def _network_failure(error: Exception) -> str:
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = error.os_error
        if cause.errno == errno.ECONNREFUSED:
            return "connection refused"
        return _one_line(f"cannot connect to {error.host}:{error.port}: {cause.strerror or cause}")
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    return _one_line(f"{type(error).__name__}: {error}")


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _DETAIL_CHARS else line[: _DETAIL_CHARS - 1] + "…"

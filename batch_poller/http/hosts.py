"""The Host header check. A page on another site can point its own name at 127.0.0.1 (DNS
rebinding) and read the API with the browser's Host header still naming that site, so only
names the daemon is known by are answered: loopback, the name it is bound to, and
[http] allowed_hosts."""

from __future__ import annotations

import ipaddress
import re

from aiohttp import web
from aiohttp.typedefs import Middleware

from batch_poller.config import HttpSettings
from batch_poller.http.errors import Handler, problem

# Health probes carry no data and send whatever Host their platform picks (Kubernetes sends
# the pod's IP), so they are answered whatever the Host.
UNCHECKED_PATHS = frozenset({"/healthz"})
LOOPBACK_NAMES = frozenset({"localhost"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
HOW_TO_ALLOW = "add it to [http] allowed_hosts (BATCH_POLLER_HTTP__ALLOWED_HOSTS, a JSON list)"
# A name or IPv4 address, or a bracketed IPv6 address, then an optional port.
_HOST = re.compile(r"(?P<name>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")


def host_name(header: str) -> str | None:
    """The name part of a Host header, lowercased, IPv6 in brackets; None when malformed."""
    match = _HOST.fullmatch(header)
    if match is None:
        return None
    return match.group("name").lower()


def _as_host_name(name: str) -> str:
    """A configured name as it appears in a Host header: IPv6 addresses in brackets."""
    name = name.strip().lower()
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def is_loopback_name(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


class HostPolicy:
    """Which Host header values are answered."""

    def __init__(self, settings: HttpSettings) -> None:
        names = {_as_host_name(name) for name in settings.allowed_hosts}
        if settings.host not in WILDCARDS:
            names.add(_as_host_name(settings.host))
        self.names = frozenset(names)

    def accepts(self, header: str) -> bool:
        name = host_name(header)
        return name is not None and (is_loopback_name(name) or name in self.names)


def host_guard(settings: HttpSettings) -> Middleware:
    policy = HostPolicy(settings)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in UNCHECKED_PATHS:
            return await handler(request)
        # request.host would fall back to this machine's name; only the header counts.
        header = request.headers.get("Host")
        if header is None:
            return problem(400, "bad request", "no Host header: send the name used to connect")
        if not policy.accepts(header):
            return problem(
                421,
                "misdirected request",
                f"this daemon does not answer to the host {_shown(header)}: {HOW_TO_ALLOW} "
                "if it is meant to reach the admin API",
            )
        return await handler(request)

    return guard


def _shown(header: str) -> str:
    """The refused host, quoted and bounded: it is the client's text, echoed back."""
    return repr(header[:100] + ("…" if len(header) > 100 else ""))

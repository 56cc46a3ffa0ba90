"""Secrets hidden from what the daemon shows: URLs in `config show`, errors and logs."""

from __future__ import annotations

import re

HIDDEN = "***"
# Query parameters that carry a credential (libpq's password, sslpassword, a token ...).
_SECRET_KEY = re.compile(r"pass|secret|token|pwd|credential|auth", re.IGNORECASE)
_QUERY_PARAMETER = re.compile(r"([?&])([^=&#]*)=([^&#]*)")


def mask_url(url: str, *, hide_user: bool = False) -> str:
    """The URL with every credential replaced by ***: the password of `user:password@`, and
    query parameters such as `?password=` or `&sslpassword=`. Read as text, not parsed, so
    a malformed URL is masked too. `hide_user` hides the whole `user:password@` part."""
    scheme, sep, rest = url.partition("://") if "://" in url else ("", "", url)
    # The last '@' ends the credentials: a password may hold '@', '/' or '?' unescaped (a '@'
    # in the query makes more hidden than needed, never less). A path that begins with '/'
    # (sqlite:////var/a@b.db) has none.
    user_info, at, after = rest.rpartition("@")
    credentials = ""
    if at and not user_info.startswith("/"):
        rest = after
        if hide_user:
            credentials = f"{HIDDEN}@"
        elif ":" in user_info:
            credentials = f"{user_info.partition(':')[0]}:{HIDDEN}@"
        else:
            credentials = f"{user_info}@"
    base, mark, query = rest.partition("?")
    masked_query = _QUERY_PARAMETER.sub(_mask_parameter, mark + query)
    return f"{scheme}{sep}{credentials}{base}{masked_query}"


def _mask_parameter(match: re.Match[str]) -> str:
    separator, key, value = match.groups()
    return f"{separator}{key}={HIDDEN if _SECRET_KEY.search(key) else value}"


def mask_endpoint_url(url: str) -> str:
    """An AWS endpoint URL with its user part hidden too: a proxy's user name there is often an
    access key or a token, unlike a database's role name."""
    return mask_url(url, hide_user=True)


def mask_webhook_url(url: str) -> str:
    """A webhook URL with its user part and every query value hidden: a receiver's URL often
    carries its own credential (`?code=`, `?sig=`, a token in the user part)."""
    masked = mask_url(url, hide_user=True)
    base, mark, query = masked.partition("?")
    if not mark:
        return masked
    hidden = _QUERY_PARAMETER.sub(lambda m: f"{m.group(1)}{m.group(2)}={HIDDEN}", mark + query)
    return base + hidden

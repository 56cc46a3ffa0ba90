"""The Host header check on the running server: loopback and configured names are answered,
any other name is 421 naming it and the setting; /healthz answers whatever the Host."""

from __future__ import annotations

import pytest

from tests.http.conftest import Admin, AdminFactory
from tests.http.raw import raw_request

STATUS = "/api/batch/poller/status"


def _get(path: str, host_line: bytes | None, version: bytes = b"1.1") -> bytes:
    host = b"" if host_line is None else b"Host: " + host_line + b"\r\n"
    start = b"GET " + path.encode() + b" HTTP/" + version + b"\r\n"
    return start + host + b"Connection: close\r\n\r\n"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
async def test_loopback_names_are_answered(admin: Admin, host: str) -> None:
    port = admin.server.url.rsplit(":", 1)[1]

    status, _ = await admin.call("GET", STATUS, headers={"Host": f"{host}:{port}"})

    assert status == 200


async def test_another_name_is_refused_naming_the_host_and_the_setting(admin: Admin) -> None:
    status, answer = await admin.call("GET", STATUS, headers={"Host": "rebound.example:8787"})

    assert status == 421
    assert answer["error"] == "misdirected request"
    assert "'rebound.example:8787'" in answer["detail"]
    assert "[http] allowed_hosts" in answer["detail"]


@pytest.mark.parametrize("path", ["/", "/metrics", "/api/openapi.json", "/api/batch/jobs"])
async def test_every_page_but_healthz_is_checked(admin: Admin, path: str) -> None:
    status, _ = await admin.call("GET", path, headers={"Host": "rebound.example"})

    assert status == 421


async def test_healthz_answers_whatever_the_host(admin: Admin) -> None:
    named = await raw_request(admin.server.url, _get("/healthz", b"10.1.2.3:8787"))
    missing = await raw_request(admin.server.url, _get("/healthz", None, b"1.0"))

    assert (named.status, missing.status) == (200, 200)


async def test_a_configured_name_is_answered(make_admin: AdminFactory) -> None:
    admin = await make_admin(allowed_hosts=["admin.example"])

    allowed, _ = await admin.call("GET", STATUS, headers={"Host": "Admin.Example:8787"})
    other, _ = await admin.call("GET", STATUS, headers={"Host": "other.example:8787"})

    assert (allowed, other) == (200, 421)


async def test_a_missing_host_is_a_bad_request(admin: Admin) -> None:
    # HTTP/1.1 requires a Host (the parser refuses it); HTTP/1.0 reaches the check.
    http11 = await raw_request(admin.server.url, _get(STATUS, None))
    http10 = await raw_request(admin.server.url, _get(STATUS, None, b"1.0"))

    assert (http11.status, http10.status) == (400, 400)
    assert "Host" in http11.json()["detail"]
    assert "no Host header" in http10.json()["detail"]


@pytest.mark.parametrize(
    "host_line",
    [b"local\xffhost", b"localhost\xc3\xa9", b"127.0.0.1 evil.example", b"[::1", b"\t"],
)
async def test_odd_bytes_in_the_host_are_refused_and_echoed_safely(
    admin: Admin, host_line: bytes
) -> None:
    answer = await raw_request(admin.server.url, _get(STATUS, host_line))

    assert answer.status in (400, 421)
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"]  # a JSON problem, never a stack trace


async def test_the_refusal_carries_the_security_headers(admin: Admin) -> None:
    answer = await raw_request(admin.server.url, _get(STATUS, b"rebound.example"))

    assert answer.status == 421
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"

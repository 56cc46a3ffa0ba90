"""http/hosts.py: which Host header values the admin API answers."""

from __future__ import annotations

import pytest

from batch_poller.config import HttpSettings
from batch_poller.http.hosts import HostPolicy, host_name

DEFAULT = HostPolicy(HttpSettings())


@pytest.mark.parametrize(
    "header",
    [
        "localhost",
        "localhost:8787",
        "LOCALHOST:1",
        "127.0.0.1",
        "127.0.0.1:8787",
        "127.1.2.3:80",
        "[::1]",
        "[::1]:8787",
    ],
)
def test_loopback_names_with_any_port_are_accepted(header: str) -> None:
    assert DEFAULT.accepts(header)


@pytest.mark.parametrize(
    "header",
    [
        "evil.example",
        "evil.example:8787",
        "localhost.evil.example",
        "127.0.0.1.evil.example",
        "localhost.",
        "0.0.0.0:8787",
        "[::]:8787",
        "::1",  # IPv6 without brackets is not a Host header
        "192.0.2.10",
        "",
        " localhost",
        "localhost:",
        "localhost:123456",
        "localhost:80:80",
        "localhost@evil.example",
        "evil.example#localhost",
        "local\x00host",
        "localhost\udcff",
        "l\u043ecalhost",  # a Cyrillic o
        "[::1",
        "[::1]x",
    ],
)
def test_other_names_and_malformed_headers_are_refused(header: str) -> None:
    assert not DEFAULT.accepts(header)


def test_configured_names_and_the_bound_host_are_accepted() -> None:
    policy = HostPolicy(
        HttpSettings(host="192.0.2.10", allowed_hosts=["Admin.Example", "fd00::7", "[fd00::8]"])
    )

    for header in ("admin.example", "ADMIN.example:443", "[fd00::7]:1", "[fd00::8]"):
        assert policy.accepts(header), header
    for header in ("192.0.2.10", "192.0.2.10:8787"):
        assert policy.accepts(header), header
    assert not policy.accepts("other.example")
    assert not policy.accepts("192.0.2.11")


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])
def test_a_wildcard_bind_adds_no_name(wildcard: str) -> None:
    policy = HostPolicy(HttpSettings(host=wildcard))

    assert policy.names == frozenset()
    assert not policy.accepts(wildcard)
    assert policy.accepts("localhost:8787")


def test_host_name_is_the_lowercased_name_without_the_port() -> None:
    assert host_name("Example.COM:8080") == "example.com"
    assert host_name("[FD00::1]:8080") == "[fd00::1]"
    assert host_name("bad host") is None

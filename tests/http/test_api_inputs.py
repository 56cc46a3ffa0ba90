"""Inputs the generated requests reach only by luck, pinned: digits that are not ASCII, and a
method a path does not have."""

from __future__ import annotations

import pytest

from tests.http.conftest import BEARER, Admin


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("limit=%C2%B2", "limit"),  # "²": a digit to str.isdigit(), not to int()
        ("offset=%D9%A3", "offset"),  # an Arabic-Indic three
        ("limit=%EF%BC%95", "limit"),  # a fullwidth five
        ("offset=1000000001", "offset"),
    ],
)
async def test_a_number_that_is_not_plain_ascii_digits_is_a_bad_request(
    admin: Admin, query: str, name: str
) -> None:
    status, answer = await admin.call("GET", f"/api/batch/jobs?{query}")

    assert status == 400
    assert answer["detail"].startswith(f"{name}: ")


@pytest.mark.parametrize("auth", [{}, {"Authorization": BEARER}])
async def test_a_method_a_path_lacks_is_405_naming_the_allowed_ones(
    admin: Admin, auth: dict[str, str]
) -> None:
    # With or without the token: no handler runs, so there is nothing to guard.
    url = admin.server.url + "/api/batch/poller/status"
    async with admin.http.delete(url, headers=auth) as response:
        status, allow, body = response.status, response.headers.get("Allow"), await response.json()

    assert status == 405
    assert allow is not None and "GET" in allow
    assert body["error"] == "method not allowed"


async def test_a_get_on_the_cleanup_path_is_405_not_a_job_lookup(admin: Admin) -> None:
    async with admin.http.get(admin.server.url + "/api/batch/jobs/abcdefabcdef/cleanup") as got:
        status, allow = got.status, got.headers.get("Allow")

    assert (status, allow) == (405, "POST")

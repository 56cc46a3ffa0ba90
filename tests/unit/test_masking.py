"""Credentials never shown: database URLs in errors as in `config show`."""

from __future__ import annotations

import pytest

from batch_poller.masking import mask_endpoint_url, mask_url, mask_webhook_url
from batch_poller.store.engine import to_async_url


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/batch-poller/batch-poller.db",
        "sqlite:///folder@with-at/batch-poller.db",
        "postgresql://poller@db/batches?sslmode=require",
        "postgresql:///batches?host=/run/postgresql",
    ],
)
def test_a_url_without_credentials_is_shown_as_it_is(url: str) -> None:
    assert mask_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "mysql://poller:hunter2@db/batches",
        "mysql://poller@db/batches?password=hunter2",
        "oracle://poller@db/batches?token=hunter2&mode=x",
        "not a url at all://x:hunter2@y",
        "admin:hunter2@db.example/jobs",
    ],
)
def test_an_unsupported_or_unparsable_url_is_refused_without_its_credentials(url: str) -> None:
    with pytest.raises(ValueError) as refused:
        to_async_url(url)

    assert "hunter2" not in str(refused.value)
    assert "***" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:pa?ss@127.0.0.1:5432/db", "postgresql://u:***@127.0.0.1:5432/db"),
        ("postgresql://u:p?a@s/s@db/x?sslmode=require", "postgresql://u:***@db/x?sslmode=require"),
        ("mysql://u:TOP?SECRET@h/d", "mysql://u:***@h/d"),
        ("sqlite:////var/lib/a@b.db?mode=ro", "sqlite:////var/lib/a@b.db?mode=ro"),
    ],
)
def test_a_password_holding_a_question_mark_is_masked_whole(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert mask_endpoint_url("http://AKIAXX:sec?ret@proxy:8080/") == "http://***@proxy:8080/"
    assert "hook?pw" not in mask_webhook_url("https://hookuser:hook?pw@crm.example/h")

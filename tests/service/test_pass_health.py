"""The pass health behind /healthz and the watchdog, and how it logs a failure that goes on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from batch_poller.health import PassHealth
from batch_poller.store.errors import StoreError

START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _readonly() -> StoreError:
    original = OperationalError("UPDATE x SET y=?", ("secret",), Exception("readonly database"))
    return StoreError(
        "claim jobs: OperationalError: attempt to write a readonly database", original
    )


def test_a_repeated_failure_is_logged_once_then_summed_up_with_a_count() -> None:
    health = PassHealth()
    with capture_logs() as logs:
        for second in range(130):  # a pass a second, each failing alike
            health.pass_failed(_readonly(), START + timedelta(seconds=second))
    failed = [entry for entry in logs if entry["event"] == "pass_failed"]
    assert len(failed) == 3  # the first, then a summary a minute
    assert "repeated" not in failed[0] and "exc_info" not in failed[0]
    assert failed[1]["repeated"] == 60 and "repeated 60 times" in failed[1]["detail"]
    assert all("secret" not in str(entry) for entry in logs)


def test_health_fails_from_the_first_failed_pass_and_is_wedged_after_the_bound() -> None:
    health = PassHealth()
    health.pass_failed(_readonly(), START)
    assert health.failing and health.as_dict()["health"] == "failing"
    assert "readonly" in str(health.as_dict()["last_error"])
    assert not health.wedged(START + timedelta(seconds=299), 300)
    health.pass_failed(_readonly(), START + timedelta(seconds=300))
    assert health.wedged(START + timedelta(seconds=300), 300)
    with capture_logs() as logs:
        health.pass_succeeded(START + timedelta(seconds=301))
    assert not health.failing and not health.wedged(START + timedelta(seconds=400), 300)
    assert [entry["event"] for entry in logs] == ["passes_recovered"]


def test_a_bug_keeps_its_traceback_once() -> None:
    health = PassHealth()
    with capture_logs() as logs:
        for second in range(3):
            health.pass_failed(TypeError("unexpected keyword"), START + timedelta(seconds=second))
    assert len(logs) == 1 and logs[0]["exc_info"] is not None
    assert logs[0]["error"] == "TypeError: unexpected keyword"

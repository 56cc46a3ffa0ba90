"""The OpenAPI document matches the routes; metrics tell a real lifecycle; a non-loopback
address guards reading too, and the daemon will not bind one without a token."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from batch_poller.config import HttpSettings
from batch_poller.http.openapi import openapi_document
from batch_poller.http.server import build_http_app
from batch_poller.supervisor import Supervisor
from tests.http.conftest import BEARER, TOKEN, Admin


def _routes(app: Any) -> set[tuple[str, str]]:
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
    }


def test_the_openapi_document_lists_exactly_the_routes(supervisor: Supervisor) -> None:
    app = build_http_app(supervisor, HttpSettings(), lambda: TOKEN)
    documented = {
        (method, path)
        for path, operations in openapi_document()["paths"].items()
        for method in operations
    }

    assert documented == _routes(app)


def test_every_changing_operation_is_documented_as_guarded() -> None:
    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            assert (method == "post") == ("security" in operation), (method, path)


def _sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in the metrics"
    return float(match.group(1))


async def test_metrics_after_a_real_lifecycle(
    admin: Admin, control: Any, submit: Any, supervisor: Any
) -> None:
    arn = await submit(10, tags={"emulator:error-rate": "0.2"})
    await control.finish(arn, "Completed")
    await admin.call("POST", "/api/batch/process-completed", auth=BEARER)

    code, text = await admin.call("GET", "/metrics")

    assert code == 200
    assert _sample(text, "batch_poller_jobs", '{status="COMPLETED"}') == 1
    assert _sample(text, "batch_poller_jobs", '{status="IN_PROGRESS"}') == 0
    assert _sample(text, "batch_poller_passes_total") == 1
    assert _sample(text, "batch_poller_pass_duration_seconds_count") == 1
    assert _sample(text, "batch_poller_records_ingested_total", '{outcome="ok"}') == 8
    assert _sample(text, "batch_poller_records_ingested_total", '{outcome="error"}') == 2
    get = '{operation="GetModelInvocationJob",outcome="ok"}'
    assert _sample(text, "batch_poller_aws_calls_total", get) == 2  # track, then one check
    assert (
        _sample(text, "batch_poller_aws_calls_total", '{operation="DeleteObjects",outcome="ok"}')
        == 2
    )
    assert _sample(text, "batch_poller_cleanups_total", '{outcome="done"}') == 1
    assert _sample(text, "batch_poller_bytes_freed_total") > 0
    assert _sample(text, "batch_poller_completion_to_stored_seconds_count", '{via="polling"}') == 1
    assert 'batch_poller_build_info{python="' in text
    assert f'owner="{supervisor.owner}"' in text  # batch_poller_replica_info
    assert _sample(text, "batch_poller_leases_lost_total") == 0
    ended = supervisor.last_pass_at.timestamp()
    assert _sample(text, "batch_poller_last_successful_pass_timestamp_seconds") == ended
    assert _sample(text, "process_resident_memory_bytes") > 0


async def test_throttled_calls_are_counted_as_throttled(
    admin: Admin, control: Any, submit: Any
) -> None:
    arn = await submit(1)
    await control.set_job_faults(arn, {"throttle_rate": 1.0})
    await admin.call("POST", "/api/batch/process-completed", auth=BEARER)

    _, text = await admin.call("GET", "/metrics")

    throttled = '{operation="GetModelInvocationJob",outcome="throttled"}'
    assert _sample(text, "batch_poller_aws_calls_total", throttled) == 5  # every retry counted


async def test_on_a_public_address_reading_needs_the_token_too(supervisor: Supervisor) -> None:
    # Served on loopback by the test, configured as if bound to a public address.
    app = build_http_app(supervisor, HttpSettings(host="192.0.2.10"), lambda: TOKEN)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as http:
        base = str(server.make_url(""))
        async with http.get(base + "/api/batch/poller/status") as anonymous:
            refused = anonymous.status
        async with http.get(base + "/metrics") as anonymous_metrics:
            refused_metrics = anonymous_metrics.status
        async with http.get(
            base + "/api/batch/poller/status", headers={"Authorization": BEARER}
        ) as allowed:
            granted = allowed.status
        async with http.get(base + "/healthz") as health:
            healthy = health.status

    assert (refused, refused_metrics, granted, healthy) == (401, 401, 200, 200)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_the_daemon_will_not_bind_a_public_address_without_a_token(
    tmp_path: Path, host: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[http]\nhost = "{host}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_POLLER_HTTP")}

    result = subprocess.run(
        [sys.executable, "-m", "batch_poller", "--config", str(config), "run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert result.returncode == 78
    assert "not a loopback address and no admin token" in result.stderr


def test_an_unreadable_token_file_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[http]\nadmin_token_file = "{tmp_path / "missing"}"\n')

    result = subprocess.run(
        [sys.executable, "-m", "batch_poller", "--config", str(config), "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 78
    assert "cannot read [http] admin_token_file" in result.stderr

"""Configuration mistakes as one line, never a traceback and never a secret: secret settings of
the wrong type, endpoint URLs with credentials, and environment variables that are not JSON."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from batch_poller.config import EX_CONFIG
from batch_poller.emulator.server import Endpoints
from tests.processes import run_command, running, write_config


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("content", "secret", "shown"),
    [
        ("[http]\nadmin_token = 12345678\n", "12345678", "http.admin_token=***"),
        (
            '[database]\nurl = ["postgresql://u:hunter2@h/db"]\n',
            "hunter2",
            "database.url=['postgresql://u:***@h/db']",
        ),
        (
            '[aws]\ns3_endpoint_url = ["http://AKIA:topsecret@host"]\n',
            "topsecret",
            "aws.s3_endpoint_url=['http://***@host']",
        ),
    ],
    ids=["admin token", "database url", "endpoint url"],
)
def test_an_invalid_secret_setting_is_refused_without_showing_it(
    tmp_path: Path, content: str, secret: str, shown: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(content)

    result = run_command("--config", str(path), "config", "check")

    assert result.returncode == EX_CONFIG
    line = _one_line(result)
    assert shown in line and "is invalid" in line
    assert secret not in result.stderr + result.stdout


def test_config_show_hides_credentials_in_endpoint_urls(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "[aws]\n"
        'bedrock_endpoint_url = "http://AKIA:topsecret@bedrock.internal:8443/"\n'
        's3_endpoint_url = "https://token123@s3.internal/?X-Amz-Security-Token=abc"\n'
    )

    result = run_command("--config", str(path), "config", "show")

    assert result.returncode == 0, result.stderr
    for secret in ("AKIA", "topsecret", "token123", "abc"):
        assert secret not in result.stdout
    shown = result.stdout
    assert "# bedrock_endpoint_url is set and not shown: http://***@bedrock.internal:8443/" in shown
    assert "# s3_endpoint_url is set and not shown: https://***@s3.internal/?X-Amz-Se" in shown


async def test_a_reload_refusing_an_invalid_token_does_not_log_it(
    tmp_path: Path, endpoints: Endpoints
) -> None:
    config = write_config(tmp_path, endpoints)
    with running(config) as daemon:
        daemon.wait_for(lambda: _has(daemon, "daemon_started"), "the start")
        config.write_text(config.read_text().replace("[http]", "[http]\nadmin_token = 12345678"))
        daemon.signal(signal.SIGHUP)
        daemon.wait_for(lambda: _has(daemon, "reload_failed"), "the refusal")
    failed = next(e for e in daemon.events() if e.get("event") == "reload_failed")
    assert "http.admin_token=***" in failed["error"]
    assert "12345678" not in daemon.log_path.read_text()


def _has(daemon: Any, event: str) -> bool:
    return any(e.get("event") == event for e in daemon.events())


BAD_VARIABLES = {
    "list": ("BATCH_POLLER_CLEANUP__MANAGED_PREFIXES", "s3://b/batches/", "a list"),
    "hosts": ("BATCH_POLLER_HTTP__ALLOWED_HOSTS", "myhost", "a list"),
    "table": ("BATCH_POLLER_PRICING", "x", "a table"),
    "section": ("BATCH_POLLER_HTTP", "x", "a table"),
}


@pytest.mark.parametrize("case", list(BAD_VARIABLES), ids=list(BAD_VARIABLES))
@pytest.mark.parametrize("command", [("config", "check"), ("run", "--once")], ids=["check", "run"])
def test_a_variable_that_is_not_json_exits_78_naming_it(
    tmp_path: Path, case: str, command: tuple[str, ...]
) -> None:
    name, value, kind = BAD_VARIABLES[case]
    env = {name: value, "BATCH_POLLER_DATABASE__URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}

    result = run_command(*command, env=env)

    assert result.returncode == EX_CONFIG, result.stderr
    line = _one_line(result)
    assert f"environment {name} is invalid" in line and kind in line and "JSON" in line
    assert not (tmp_path / "db.sqlite").exists()

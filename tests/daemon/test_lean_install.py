"""A production host installs no emulator and, with SQLite, no PostgreSQL driver: what needs
them says in one line which extra to install, and exits 78 (systemd does not restart on it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.processes import run_command


@pytest.fixture
def without(tmp_path: Path) -> dict[str, str]:
    """The environment of a process in which moto and asyncpg cannot be imported."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import sys\nsys.modules['moto'] = None\nsys.modules['asyncpg'] = None\n"
    )
    return {"PYTHONPATH": str(shim)}


@pytest.mark.parametrize(("command", "extra"), [("emulate", "emulator"), ("demo", "emulator")])
def test_the_emulator_without_its_extra_is_one_line(
    without: dict[str, str], command: str, extra: str
) -> None:
    result = run_command(command, env=without)

    assert result.returncode == 78
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"pip install 'batch-poller[{extra}]'" in result.stderr


@pytest.fixture
def without_flask(tmp_path: Path) -> dict[str, str]:
    """moto installed without its server extra: flask cannot be imported."""
    shim = tmp_path / "shim-flask"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['flask'] = None\n")
    return {"PYTHONPATH": str(shim)}


@pytest.mark.parametrize("command", ["emulate", "demo"])
def test_moto_without_its_server_extra_is_one_line(
    without_flask: dict[str, str], command: str
) -> None:
    result = run_command(command, env=without_flask)

    assert result.returncode == 78
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "needs flask, which is not installed" in result.stderr
    assert "pip install 'batch-poller[emulator]'" in result.stderr


def test_postgresql_without_its_driver_is_refused_by_config_check_and_by_run(
    without: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "postgresql://poller@127.0.0.1/test"\n')

    for command in (("config", "check"), ("run", "--once")):
        result = run_command("--config", str(config), *command, env=without)
        assert result.returncode == 78, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "database.url" in result.stderr
        assert "pip install 'batch-poller[postgres]'" in result.stderr


def test_a_log_level_that_is_none_is_a_usage_error_not_a_traceback() -> None:
    result = run_command("--log-level", "verbose", "config", "check")

    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "invalid choice: 'VERBOSE'" in result.stderr

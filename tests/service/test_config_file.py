"""config.example.toml, the seed's variable names, `config check` and `config show`."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from batch_poller.config import EX_CONFIG, ModelPrice, Settings, load_settings
from tests.processes import run_command

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def _model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _model_keys(annotation, f"{prefix}{name}.")
        elif name == "pricing":
            keys |= {f"pricing.*.{k}" for k in ModelPrice.model_fields}
        else:
            keys.add(prefix + name)
    return keys


def _file_keys(data: dict[str, Any]) -> set[str]:
    keys = set()
    for section, values in data.items():
        for key, value in values.items():
            if section == "pricing":
                keys |= {f"pricing.*.{k}" for k in value}
            else:
                keys.add(f"{section}.{key}")
    return keys


def test_the_example_lists_exactly_the_models_keys() -> None:
    data = tomllib.loads(EXAMPLE.read_text())

    assert _file_keys(data) == _model_keys(Settings)


def test_the_example_shows_every_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/batch-poller")
    example = load_settings(str(EXAMPLE))
    defaults = Settings()

    assert example.model_dump(exclude={"pricing"}) == defaults.model_dump(exclude={"pricing"})


def test_every_key_has_a_comment() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[index - 1].startswith("#"), f"no comment above {line!r}"


@pytest.mark.parametrize(
    ("variable", "value", "section", "key", "expected"),
    [
        ("BATCH_POLLER_ENABLED", "false", "poller", "enabled", False),
        ("BATCH_POLLER_INTERVAL", "15", "poller", "interval_seconds", 15.0),
        ("BATCH_CHECK_INTERVAL", "0", "poller", "check_interval_seconds", 0.0),
        ("BATCH_AUTO_CLEANUP", "false", "cleanup", "enabled", False),
        ("BATCH_RESULT_FETCH_MAX_RETRIES", "5", "results", "max_retries", 5),
    ],
)
def test_the_seed_variables_work_as_written(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str,
    value: str,
    section: str,
    key: str,
    expected: Any,
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[{section}]\n{key} = {'true' if isinstance(expected, bool) else 99}\n")
    monkeypatch.setenv(variable, value)

    settings = load_settings(str(path))

    assert getattr(getattr(settings, section), key) == expected


def test_the_sectioned_variable_wins_over_the_seed_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_POLLER_INTERVAL", "15")
    monkeypatch.setenv("BATCH_POLLER_POLLER__INTERVAL_SECONDS", "20")

    assert Settings().poller.interval_seconds == 20


def test_config_check_accepts_the_example() -> None:
    result = run_command("--config", str(EXAMPLE), "config", "check")

    assert result.returncode == 0
    assert "configuration is valid" in result.stdout


def test_config_check_refuses_a_bad_file_with_78(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[cleanup]\nenabled = 'sometimes'\n")

    result = run_command("--config", str(path), "config", "check")

    assert result.returncode == EX_CONFIG
    assert "cleanup.enabled='sometimes'" in result.stderr and str(path) in result.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://poller:hunter2@db.internal:5432/batches",
            "postgresql://poller:***@db.internal:5432/batches",
        ),
        (
            "postgresql://poller@db.internal/batches?password=hunter2&sslmode=require",
            "postgresql://poller@db.internal/batches?password=***&sslmode=require",
        ),
        (
            "postgresql:///batches?host=/run/postgresql&sslpassword=hunter2",
            "postgresql:///batches?host=/run/postgresql&sslpassword=***",
        ),
        ("postgresql://poller:hun@ter2@db/batches", "postgresql://poller:***@db/batches"),
        ("postgresql://poller:hun/ter2@db/batches", "postgresql://poller:***@db/batches"),
    ],
)
def test_config_show_masks_every_form_of_database_password(
    tmp_path: Path, url: str, shown: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{url}"\n')

    result = run_command("--config", str(path), "config", "show")

    assert result.returncode == 0
    assert "hunter2" not in result.stdout and "ter2" not in result.stdout
    # Left out with a comment: the masked URL fed back would name another database.
    assert f"# url is set and not shown: {shown}" in result.stdout
    settings = tomllib.loads(result.stdout)
    assert settings["poller"]["interval_seconds"] == 60.0 and "url" not in settings["database"]


def test_the_install_script_is_valid_bash() -> None:
    result = subprocess.run(
        ["bash", "-n", str(ROOT / "deploy" / "install.sh")], capture_output=True
    )

    assert result.returncode == 0, result.stderr

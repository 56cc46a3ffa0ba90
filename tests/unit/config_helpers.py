"""What the configuration tests share: an environment holding none of the daemon's variables
(nor a system-wide config file), and settings loaded from a file's text."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from batch_poller import config


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("BATCH_POLLER_"):
            monkeypatch.delenv(name)
    for name in ("STATE_DIRECTORY", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "absent" / "config.toml")
    yield


def load_text(tmp_path: Path, text: str) -> config.Settings:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return config.load_settings(str(path))

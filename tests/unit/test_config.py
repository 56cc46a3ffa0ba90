"""config.py: defaults < TOML file < environment, and one-line ConfigErrors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from batch_poller.config import ConfigError, default_database_url, load_settings
from tests.unit.config_helpers import clean_environment  # noqa: F401 (autouse)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def test_defaults_without_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for settings in (load_settings(), load_settings(write(tmp_path, ""))):
        assert settings.poller.interval_seconds == 60.0
        assert settings.poller.max_concurrent_jobs == 8
        assert settings.results.max_line_bytes == 16 * 1024 * 1024
        assert settings.results.store_model_input is False
        assert settings.cleanup.managed_prefixes == []
        assert settings.pricing == {}
        assert settings.database.url == f"sqlite:///{tmp_path / 'batch-poller.db'}"


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[poller]\ninterval_seconds = 10\nmax_concurrent_jobs = 3\n"
        '[cleanup]\nmanaged_prefixes = ["s3://b/batch/"]\n'
        '[database]\nurl = "sqlite:///x.db"\n',
    )
    settings = load_settings(path)
    assert settings.poller.interval_seconds == 10.0
    assert settings.poller.max_concurrent_jobs == 3
    assert settings.cleanup.managed_prefixes == ["s3://b/batch/"]
    assert settings.database.url == "sqlite:///x.db"


def test_file_named_by_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BATCH_POLLER_CONFIG", write(tmp_path, "[poller]\ninterval_seconds = 7\n"))
    assert load_settings().poller.interval_seconds == 7.0


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path, "[poller]\ninterval_seconds = 10\nmax_concurrent_jobs = 3\n")
    monkeypatch.setenv("BATCH_POLLER_POLLER__INTERVAL_SECONDS", "5")
    settings = load_settings(path)
    assert settings.poller.interval_seconds == 5.0
    assert settings.poller.max_concurrent_jobs == 3  # the rest of the section is kept


def test_pricing_table_gives_decimals(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[pricing."amazon.nova-lite-v1:0"]\ninput_per_1k = 0.00003\noutput_per_1k = 0.00012\n'
        '[pricing."amazon.titan-embed-text-v2:0"]\ninput_per_1k = 0.00001\n',
    )
    pricing = load_settings(path).pricing
    nova = pricing["amazon.nova-lite-v1:0"]
    assert isinstance(nova.input_per_1k, Decimal)
    assert nova.input_per_1k == Decimal("0.00003")
    assert nova.output_per_1k == Decimal("0.00012")
    assert pricing["amazon.titan-embed-text-v2:0"].output_per_1k == Decimal(0)


def error_of(path: str | None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[poller]\nintervall_seconds = 10\n")
    assert (
        error_of(path) == "unknown setting 'poller.intervall_seconds': did you mean "
        f"'poller.interval_seconds'? (from config file {path})"
    )


def test_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path, "[poler]\ninterval_seconds = 10\n")
    assert (
        error_of(path)
        == f"unknown setting 'poler': did you mean 'poller'? (from config file {path})"
    )


def test_wrong_type(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, '[poller]\ninterval_seconds = "soon"\n'))
    assert message.startswith("setting poller.interval_seconds='soon' is invalid")
    assert message.endswith(f"(from config file {tmp_path / 'config.toml'})")


def test_out_of_range(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "[poller]\nmax_concurrent_jobs = 0\n"))
    assert message.startswith("setting poller.max_concurrent_jobs=0 is invalid")
    assert "greater than or equal to 1" in message
    assert message.endswith(f"(from config file {tmp_path / 'config.toml'})")


def test_negative_price(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, '[pricing."m"]\ninput_per_1k = -1\n'))
    assert message.startswith("setting pricing.m.input_per_1k=-1 is invalid")


def test_bad_value_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path, "[poller]\nmax_concurrent_jobs = 3\n")
    monkeypatch.setenv("BATCH_POLLER_POLLER__MAX_CONCURRENT_JOBS", "0")
    message = error_of(path)
    assert message.startswith("setting poller.max_concurrent_jobs='0' is invalid")
    assert message.endswith("(from environment BATCH_POLLER_POLLER__MAX_CONCURRENT_JOBS)")


def test_unknown_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_POLLER_POLLER__BOGUS", "1")
    assert error_of(None) == (
        "unknown setting 'poller.bogus' (from environment BATCH_POLLER_POLLER__BOGUS)"
    )


def test_bad_lower_case_variable_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path, "[poller]\nmax_concurrent_jobs = 3\n")
    monkeypatch.setenv("batch_poller_poller__max_concurrent_jobs", "0")
    assert "config file" not in error_of(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    assert error_of(str(path)) == f"cannot read config file {path}: No such file or directory"


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[poller\ninterval_seconds = 1\n")
    message = error_of(path)
    assert message.startswith(f"config file {path} is not valid TOML: ")
    assert "line 1" in message


def test_database_url_in_state_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/batch-poller:/var/lib/other")
    assert default_database_url() == "sqlite:////var/lib/batch-poller/batch-poller.db"


def test_database_url_in_current_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_database_url() == f"sqlite:///{tmp_path}/batch-poller.db"


@pytest.mark.parametrize("url", ["not a url", "sqs://queue", "https://"])
def test_an_events_queue_url_must_be_one(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"events\.sqs_queue_url"):
        load_settings(write(tmp_path, f'[events]\nsqs_queue_url = "{url}"\n'))
    fine = "https://sqs.us-east-1.amazonaws.com/123456789012/batch-poller-events"
    assert load_settings(write(tmp_path, f'[events]\nsqs_queue_url = "{fine}"\n')).events.enabled


@pytest.mark.parametrize("tag", ["=search", " team=search", "\tteam"])
def test_an_events_job_tag_needs_a_key(tmp_path: Path, tag: str) -> None:
    with pytest.raises(ConfigError, match=r"events\.job_tag"):
        load_settings(write(tmp_path, f'[events]\njob_tag = "{tag}"\n'))


@pytest.mark.parametrize(
    ("tag", "tags", "matches"),
    [
        ("", {}, True),
        ("team", {"team": ""}, True),
        ("team", {"other": "x"}, False),
        ("team=search", {"team": "search"}, True),
        ("team=search", {"team": "ads"}, False),
        ("url=a=b", {"url": "a=b"}, True),
    ],
)
def test_an_events_job_tag_matches_key_and_value(
    tmp_path: Path, tag: str, tags: dict[str, str], matches: bool
) -> None:
    events = load_settings(write(tmp_path, f'[events]\njob_tag = "{tag}"\n')).events
    assert events.tag_matches(tags) is matches

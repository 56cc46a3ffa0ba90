"""What `config check` and every start refuse before anything runs: one line naming the key,
the value, what is wrong and, where it can tell, what was meant."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from batch_poller.cli import main
from batch_poller.config import ConfigError, load_settings, render_toml
from tests.unit.config_helpers import clean_environment, load_text  # noqa: F401 (autouse)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[database]\nurl = "mysql://db/jobs"', "database.url='mysql://db/jobs' is invalid: the "),
        ('[database]\nurl = "jobs.db"', "it is not a URL: sqlite:///path/to/file.db"),
        ('[aws]\nregion = ""', "aws.region='' is invalid: not an AWS region's name"),
        ('[aws]\nregion = "US East"', "aws.region='US East' is invalid"),
        (
            '[cleanup]\nmanaged_prefixes = ["s3://bucket/batch"]',
            "did you mean 's3://bucket/batch/'?",
        ),
        ('[cleanup]\nmanaged_prefixes = ["bucket/batch/"]', "is not an s3://bucket/prefix/ URI"),
        ('[cleanup]\nmanaged_prefixes = ["s3:///batch/"]', "is not an s3://bucket/prefix/ URI"),
        ('[logging]\nlevel = "verbose"', "logging.level='verbose' is invalid"),
        ("[poller]\nintervl = 3", "unknown setting 'poller.intervl': did you mean "),
        ("[pollr]\nenabled = true", "unknown setting 'pollr': did you mean 'poller'?"),
        ('[[hooks.command]]\nname = "a"\nagrv = ["true"]', "did you mean 'hooks.command.argv'?"),
    ],
)
def test_a_setting_that_cannot_work_is_refused_in_one_line(
    tmp_path: Path, text: str, words: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_text(tmp_path, text)
    message = str(refused.value)
    assert words in message and "\n" not in message
    assert message.endswith(f"(from config file {tmp_path / 'config.toml'})")


def test_a_log_level_is_taken_in_any_letter_case(tmp_path: Path) -> None:
    assert load_text(tmp_path, '[logging]\nlevel = "debug"').logging.level == "DEBUG"
    assert load_text(tmp_path, '[logging]\nlevel = "Warning"').logging.level == "WARNING"


def test_postgresql_without_its_driver_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = '[database]\nurl = "postgresql://poller@127.0.0.1/test"'
    assert load_text(tmp_path, text).database.url.startswith("postgresql://")
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as on a host without the extra

    with pytest.raises(ConfigError, match=r"pip install 'batch-poller\[postgres\]'"):
        load_text(tmp_path, text)


def test_config_show_leaves_out_what_it_masks_so_feeding_it_back_changes_nothing(
    tmp_path: Path,
) -> None:
    settings = load_text(
        tmp_path,
        '[database]\nurl = "postgresql://poller:hunter2@db/jobs"\n'
        '[aws]\ns3_endpoint_url = "http://AKIAX:secret@proxy:8080/"\n'
        '[http]\nadmin_token = "t0ken"\n',
    )

    shown = render_toml(settings, mask_secrets=True)

    assert "hunter2" not in shown and "secret" not in shown.replace("not shown", "")
    assert "t0ken" not in shown and '***"' not in shown
    assert "# admin_token is set and not shown" in shown
    assert "# url is set and not shown: postgresql://poller:***@db/jobs" in shown
    fed_back = load_text(tmp_path, shown)
    assert fed_back.http.admin_token.get_secret_value() == ""  # left out, not changed to ***
    assert fed_back.database.url != "postgresql://poller:***@db/jobs"


def test_the_admin_token_comes_from_systemd_s_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "admin-token").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))

    assert load_text(tmp_path, "").admin_token() == "from-systemd"
    # A token set in the settings comes first.
    assert load_text(tmp_path, '[http]\nadmin_token = "mine"').admin_token() == "mine"


def test_config_show_json_masks_every_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[database]\nurl = "sqlite:////tmp/x.db?password=hunter2"\n'
        '[http]\nadmin_token = "t0ken"\n'
        '[[hooks.webhook]]\nname = "crm"\nurl = "https://user:pw@crm.example/hook?token=abc"\n'
        'secret = "s3cret"\n'
    )

    assert main(["--config", str(path), "config", "show", "--json"]) == 0
    shown = capsys.readouterr().out
    document = json.loads(shown)
    assert main(["--config", str(path), "config", "check", "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)

    for secret in ("hunter2", "t0ken", "s3cret", ":pw@", "abc"):
        assert secret not in shown, secret
    assert document["http"]["admin_token"] == "***"
    assert document["hooks"]["webhook"][0]["secret"] == "***"
    assert document["database"]["url"].startswith("sqlite:////tmp/x.db?password=")
    assert checked == {"valid": True, "file": str(path)}


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"\xff\xfe[aws]\n", "is not UTF-8 text"),
        (b"[poller]\ninterval_seconds = " + b"9" * 5000 + b"\n", "holds a value that cannot be"),
    ],
)
def test_a_config_file_that_cannot_be_read_is_one_line(
    tmp_path: Path, content: bytes, words: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=words):
        load_settings(str(path))


def test_a_fifo_is_refused_not_read_forever(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_settings(str(fifo))
    with pytest.raises(ConfigError, match=r"admin_token_file .*: not a regular file"):
        load_text(tmp_path, f'[http]\nadmin_token_file = "{fifo}"\n')


def test_an_empty_config_name_is_refused_not_taken_for_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="--config names no file"):
        load_settings("")
    monkeypatch.setenv("BATCH_POLLER_CONFIG", "")
    with pytest.raises(ConfigError, match=r"\$BATCH_POLLER_CONFIG names no file"):
        load_settings()


def test_config_show_writes_odd_characters_as_toml_reads_them(tmp_path: Path) -> None:
    odd = 'a\u001b[2J\nb\u0000\u007fz"\\'
    settings = load_text(
        tmp_path, f"[events]\njob_name_prefix = {json.dumps(odd)}\n".replace("\x7f", "\\u007f")
    )
    assert settings.events.job_name_prefix == odd

    fed_back = load_text(tmp_path, render_toml(settings, mask_secrets=True))

    assert fed_back.events.job_name_prefix == odd


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sqlite://relative.db", "SQLite needs a file"),
        ("sqlite://", "SQLite needs a file"),
        ("sqlite:///:memory:", "SQLite needs a file"),
        ("SQLITE:////tmp/x.db", "the scheme 'SQLITE' is not"),
        ("postgresql://poller@db:99999/jobs", "the port '99999' is not a number"),
        ("postgresql://poller@[::1]:0/jobs", "the port '0' is not a number"),
    ],
)
def test_a_database_url_the_start_would_refuse_is_refused_by_the_check(
    tmp_path: Path, url: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_text(tmp_path, f'[database]\nurl = "{url}"\n')


@pytest.mark.parametrize(
    "url",
    ["sqlite:///jobs.db", "sqlite:////var/lib/x.db?mode=rwc", "postgresql://u:p@[::1]:5432/db"],
)
def test_database_urls_the_store_takes_pass(tmp_path: Path, url: str) -> None:
    assert load_text(tmp_path, f'[database]\nurl = "{url}"\n').database.url == url


def test_a_misspelt_section_in_the_environment_is_refused_with_the_one_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_POLLER_DATABSE__URL", "postgresql://u@db/x")
    with pytest.raises(ConfigError) as refused:
        load_text(tmp_path, "")
    assert str(refused.value) == (
        "unknown setting in environment BATCH_POLLER_DATABSE__URL: "
        "did you mean BATCH_POLLER_DATABASE__URL?"
    )

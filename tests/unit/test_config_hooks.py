"""[hooks] settings: webhooks and commands are checked at load, one line naming the problem,
and `config show` never prints a webhook's secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_poller.config import ConfigError, render_toml
from tests.unit.config_helpers import clean_environment, load_text  # noqa: F401 (autouse)

WEBHOOK = '[[hooks.webhook]]\nname = "app"\nurl = "https://example.com/hooks"\n'
SIGNED = WEBHOOK + 'secret = "TOPSECRET-1"\n'


def test_hooks_are_read_with_their_defaults(tmp_path: Path) -> None:
    settings = load_text(
        tmp_path,
        "[hooks]\nmax_attempts = 4\n"
        + SIGNED
        + 'events = ["group.completed"]\n'
        + '[[hooks.command]]\nname = "script"\nargv = ["/usr/bin/true"]\n',
    )
    [webhook] = settings.hooks.webhook
    [command] = settings.hooks.command
    assert webhook.events == ["group.completed"] and webhook.timeout_seconds == 10
    assert command.events == ["*"] and command.timeout_seconds == 60
    assert settings.hooks.max_attempts == 4
    assert [hook.name for hook in settings.hooks.all()] == ["app", "script"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (SIGNED + SIGNED, "two hooks are named 'app'"),
        ('[[hooks.webhook]]\nname = "a"\nurl = "ftp://x/"\nsecret = "s"\n', "hooks.webhook.0.url"),
        (SIGNED + 'events = ["job.done"]\n', "hooks.webhook.0.events.0"),
        (SIGNED + "events = []\n", "hooks.webhook.0.events"),
        ('[[hooks.webhook]]\nname = "has space"\nurl = "http://x/"\n', "hooks.webhook.0.name"),
        ('[[hooks.command]]\nname = "c"\nargv = []\n', "hooks.command.0.argv"),
        ('[[hooks.command]]\nname = "c"\n', "hooks.command.0.argv"),
        (WEBHOOK + 'secret_file = "/nonexistent/secret"\n', "cannot read [[hooks.webhook]] app"),
        (SIGNED + "colour = 1\n", "unknown setting 'hooks.webhook.0.colour'"),
        (WEBHOOK, "webhook 'app' has neither of secret and secret_file"),
        (SIGNED + 'secret_file = "/etc/passwd"\n', "has both of secret and secret_file"),
        ('[[hooks.command]]\nname = "c"\nargv = ["/no/such/bin"]\n', "cannot run '/no/such/bin'"),
        ('[[hooks.command]]\nname = "c"\nargv = ["no-such-program-x"]\n', "not found on PATH"),
        ('[[hooks.command]]\nname = "c"\nargv = ["/etc"]\n', "not an executable file"),
    ],
)
def test_bad_hooks_are_refused_naming_the_key(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_text(tmp_path, text)
    assert words in str(refused.value)
    assert "\n" not in str(refused.value)
    assert "TOPSECRET" not in str(refused.value)


def test_a_refused_webhook_shows_no_credential_of_its_url(tmp_path: Path) -> None:
    text = (
        '[[hooks.webhook]]\nname = "a"\nsecret = "TOPSECRET-2"\n'
        'url = "https://user:TOPSECRET-3@x/hook?code=TOPSECRET-4"\ntimeout_seconds = -1\n'
    )
    with pytest.raises(ConfigError) as refused:
        load_text(tmp_path, text)
    assert "hooks.webhook.0.timeout_seconds" in str(refused.value)
    assert "TOPSECRET" not in str(refused.value)


def test_a_secret_is_never_shown_and_the_shown_settings_load_back(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    settings = load_text(
        tmp_path,
        WEBHOOK
        + 'secret = "do-not-print"\n'
        + '[[hooks.webhook]]\nname = "b"\nurl = "http://x/?sig=do-not-print-either"\n'
        + f'secret_file = "{secret_file}"\n',
    )
    assert [hook.secret_value() for hook in settings.hooks.webhook] == [
        "do-not-print",
        "from-a-file",
    ]
    shown = render_toml(settings, mask_secrets=True)
    assert "do-not-print" not in shown and "# secret is set and not shown" in shown
    assert "# url is set and not shown: http://x/?sig=***" in shown
    assert f'secret_file = "{secret_file}"' in shown  # a path, not the secret
    # Fed back, the masked output changes nothing silently: what it left out is missing.
    with pytest.raises(ConfigError, match="has neither of secret and secret_file"):
        load_text(tmp_path, shown)
    full = load_text(tmp_path, render_toml(settings))
    assert full.hooks == settings.hooks

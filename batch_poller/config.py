"""The one Settings model. Precedence: defaults < TOML file < environment.

The file is `--config FILE`, else $BATCH_POLLER_CONFIG, else /etc/batch-poller/config.toml when
it exists. Environment keys are BATCH_POLLER_<SECTION>__<KEY>.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import shutil
import tomllib
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from batch_poller.config_errors import describe_settings_error, shown_input
from batch_poller.database_url import database_url_problem
from batch_poller.masking import mask_endpoint_url, mask_url, mask_webhook_url

SYSTEM_CONFIG = Path("/etc/batch-poller/config.toml")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# A level in any letter case: `level = "debug"` is what people write.
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR"],
    BeforeValidator(
        lambda level: (
            level.upper() if isinstance(level, str) and level.upper() in LOG_LEVELS else level
        )
    ),
]
EX_CONFIG = 78  # sysexits.h: configuration error; systemd's unit does not restart on it


class ConfigError(Exception):
    """A configuration that cannot be used; the message is one line naming the problem."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# An AWS region's name: us-east-1, eu-central-2, us-gov-west-1, ...
REGION_PATTERN = r"[a-z]{2,}(-[a-z]+)+-[0-9]+"
# A bucket or a folder in one, as cleanup compares them: s3://bucket/ or s3://bucket/prefix/
# (the final / matters: s3://b/data would also take s3://b/data-other/).
MANAGED_PREFIX = re.compile(r"s3://[^/\s]+/([^/]+/)*")


class AwsSettings(Section):
    region: str = "us-east-1"
    # Empty means AWS itself; a URL points the clients at an emulator or a VPC endpoint.
    bedrock_endpoint_url: str = ""
    s3_endpoint_url: str = ""
    sqs_endpoint_url: str = ""
    # Client-side limit per operation, calls a second, so the daemon rarely throttles itself;
    # 0 turns it off.
    max_calls_per_second: float = Field(10.0, ge=0, le=10_000)

    @field_validator("region")
    @classmethod
    def _region(cls, region: str) -> str:
        if not re.fullmatch(REGION_PATTERN, region):
            raise ValueError("not an AWS region's name, such as us-east-1 or eu-central-1")
        return region


def default_database_url() -> str:
    """The service's state directory under systemd, else the current directory."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    folder = Path(state) if state else Path.cwd()
    return f"sqlite:///{folder / 'batch-poller.db'}"


class DatabaseSettings(Section):
    url: str = Field(default_factory=default_database_url)

    @field_validator("url")
    @classmethod
    def _usable(cls, url: str) -> str:
        problem = database_url_problem(url)
        if problem is not None:
            raise ValueError(problem)
        return url

    # At start, a database that is busy or down is waited for: the first wait, doubling up to
    # the cap, until it answers.
    connect_retry_base_seconds: float = Field(1.0, gt=0, le=3600)
    connect_retry_max_seconds: float = Field(30.0, gt=0, le=3600)
    # SQLite: how long a write waits for another writer's lock before it fails.
    sqlite_busy_timeout_seconds: float = Field(5.0, ge=0, le=600)
    # PostgreSQL: how long a statement waits for a lock another session holds before it fails
    # (lock_timeout), so a stuck session shows up as an error instead of a silent wait.
    lock_timeout_seconds: float = Field(30.0, gt=0, le=3600)


class PollerSettings(Section):
    enabled: bool = True
    interval_seconds: float = Field(60.0, gt=0, le=86_400)
    # 0 means every job is due at every pass.
    check_interval_seconds: float = Field(30.0, ge=0, le=86_400)
    max_concurrent_jobs: int = Field(8, ge=1, le=1024)
    # How long a job claimed by this process stays its own without being renewed; renewed at a
    # third of it while the job is worked on. Another replica takes over a job whose lease ran
    # out (its holder died or froze).
    lease_seconds: float = Field(300.0, ge=5, le=86_400)
    # Passes failing for this long stop the systemd watchdog pings, so systemd restarts the
    # daemon; /healthz says 503 from the first failed pass.
    unhealthy_after_seconds: float = Field(300.0, gt=0, le=86_400)
    # Once a day, a warning for jobs Bedrock runs that nobody tracks (`adopt` tracks them).
    warn_untracked: bool = False


class ResultsSettings(Section):
    max_retries: int = Field(3, ge=1, le=50)
    retry_base_seconds: float = Field(2.0, ge=0, le=3600)
    store_model_input: bool = False
    # An error record's modelInput (few, and what `resubmit` runs again) is kept regardless.
    store_error_input: bool = True
    batch_size: int = Field(2000, ge=1, le=100_000)
    # Jobs whose results are streamed from S3 at the same time.
    max_concurrent_fetches: int = Field(4, ge=1, le=256)
    # A longer line is stored as an error record instead of being held in memory.
    max_line_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    # A job whose fetch failed every retry is tried again by itself after this long, doubling
    # after every further failure up to the cap; 0 leaves it to `process-completed`.
    auto_retry_after_seconds: float = Field(600.0, ge=0, le=7 * 86_400)
    auto_retry_max_seconds: float = Field(6 * 3600.0, gt=0, le=30 * 86_400)


class SubmitSettings(Section):
    """Bedrock's per-job quotas, per account and region: set them to what the account has."""

    min_records_per_job: int = Field(100, ge=1, le=10_000_000)
    max_records_per_job: int = Field(50_000, ge=1, le=10_000_000)
    # An input file is at most 1 GB, and a job here has one.
    max_job_bytes: int = Field(1024**3, ge=1024 * 1024, le=5 * 1024**3)
    max_record_bytes: int = Field(1024 * 1024, ge=1024, le=1024**3)
    # Jobs of one model submitted or in progress at once; more wait, queued, for room.
    max_concurrent_jobs_per_model: int = Field(20, ge=1, le=10_000)

    @model_validator(mode="after")
    def _ordered(self) -> SubmitSettings:
        if self.min_records_per_job > self.max_records_per_job:
            raise ValueError(
                f"min_records_per_job ({self.min_records_per_job}) is over "
                f"max_records_per_job ({self.max_records_per_job})"
            )
        return self


class CleanupSettings(Section):
    enabled: bool = True
    # When set, only prefixes under one of these s3:// URIs are ever deleted.
    managed_prefixes: list[str] = Field(default_factory=list)

    @field_validator("managed_prefixes")
    @classmethod
    def _folders(cls, prefixes: list[str]) -> list[str]:
        for prefix in prefixes:
            if MANAGED_PREFIX.fullmatch(prefix):
                continue
            hint = ""
            if MANAGED_PREFIX.fullmatch(prefix + "/"):
                hint = f": did you mean {prefix + '/'!r}?"
            raise ValueError(
                f"{prefix!r} is not an s3://bucket/prefix/ URI (a bucket, or a folder in one, "
                f"ending in /){hint}"
            )
        return prefixes


class ModelPrice(Section):
    """Batch prices per 1,000 tokens, in the account's currency."""

    input_per_1k: Decimal = Field(ge=0)
    output_per_1k: Decimal = Field(Decimal(0), ge=0)


class HttpSettings(Section):
    """The admin API, metrics and status page served by the daemon."""

    enabled: bool = True
    host: str = "127.0.0.1"
    # 0 picks a free port (tests); the daemon logs the one it bound.
    port: int = Field(8787, ge=0, le=65535)
    # A file holding the bearer token that changing requests need; empty: no token.
    admin_token_file: str = ""
    # The token itself, for environments that pass secrets as variables.
    admin_token: SecretStr = SecretStr("")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Host header names answered besides loopback and `host` itself (any port).
    allowed_hosts: list[str] = Field(default_factory=list)
    # A connection that has not sent a whole request line and headers by then is closed.
    header_timeout_seconds: float = Field(10.0, gt=0, le=3600)
    # Connections beyond this many are answered 503 and closed.
    max_connections: int = Field(100, ge=1, le=100_000)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


HookEventName = Literal["job.settled", "job.failed", "group.completed", "*"]
HOOK_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _every_event() -> list[HookEventName]:
    return ["*"]


class HookSettings(Section):
    # Names the hook in the outbox's deliveries and in `hooks failed`: keep it when the URL or
    # the command changes, or its pending deliveries are left for a hook that no longer exists.
    name: str = Field(pattern=HOOK_NAME)
    # The event types sent to it; "*" for all of them.
    events: list[HookEventName] = Field(default_factory=_every_event, min_length=1)
    timeout_seconds: float = Field(10.0, gt=0, le=3600)
    # Attempts before the event is dead-lettered (`hooks failed`, `hooks retry`); 0: [hooks].
    max_attempts: int = Field(0, ge=0, le=1000)


class WebhookSettings(HookSettings):
    url: str = Field(pattern=r"^https?://[^\s/]+")
    # Signs every request (HMAC-SHA256): the secret itself, or a file holding it.
    secret: SecretStr = SecretStr("")
    secret_file: str = ""

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookSettings:
        # An unsigned webhook cannot be told from a forged one; two secrets, from a mistake.
        given = bool(self.secret.get_secret_value()) + bool(self.secret_file)
        if given != 1:
            which = "neither" if given == 0 else "both"
            raise ValueError(
                f"webhook {self.name!r} has {which} of secret and secret_file: give one, so "
                "that its requests are signed with one secret"
            )
        return self

    def secret_value(self) -> str:
        secret = self.secret.get_secret_value()
        if secret or not self.secret_file:
            return secret
        return read_secret_file(self.secret_file, f"[[hooks.webhook]] {self.name} secret_file")


class CommandHookSettings(HookSettings):
    # The program and its arguments, run without a shell; the event arrives on stdin.
    argv: list[str] = Field(min_length=1)
    timeout_seconds: float = Field(60.0, gt=0, le=3600)

    def check_program(self) -> None:
        """ConfigError when the program is not there to run: found on PATH, or a file this
        process may execute."""
        program = self.argv[0]
        found = shutil.which(program) if os.sep not in program else program
        if found is None or not (os.path.isfile(found) and os.access(found, os.X_OK)):
            raise ConfigError(
                f"[[hooks.command]] {self.name}: cannot run {program!r}: "
                + ("not found on PATH" if found is None else "not an executable file")
            )


class HooksSettings(Section):
    """Where settled jobs and compiled groups are announced (hooks/delivery.py)."""

    webhook: list[WebhookSettings] = Field(default_factory=list)
    command: list[CommandHookSettings] = Field(default_factory=list)
    # How often the outbox is read for events other processes wrote; this process's own
    # events are sent at once.
    poll_seconds: float = Field(5.0, gt=0, le=3600)
    # A failed attempt is tried again after a random wait of up to base x 2^(attempt - 1),
    # capped, until max_attempts: then the event is dead-lettered.
    max_attempts: int = Field(8, ge=1, le=1000)
    retry_base_seconds: float = Field(10.0, gt=0, le=86_400)
    retry_max_seconds: float = Field(3600.0, gt=0, le=7 * 86_400)

    def all(self) -> list[WebhookSettings | CommandHookSettings]:
        return [*self.webhook, *self.command]

    @model_validator(mode="after")
    def _names_differ(self) -> HooksSettings:
        names = [hook.name for hook in self.all()]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"two hooks are named {twice[0]!r}: every hook needs its own name")
        return self


class EventsSettings(Section):
    """Bedrock's job state changes, routed by an EventBridge rule to an SQS queue: a job is
    checked within seconds of its change, and the passes become the safety net."""

    # The queue's URL; empty: no events, polling alone.
    sqs_queue_url: str = Field("", pattern=r"^(https?://[^\s/]+/\S+)?$")
    # With events on, a pass runs this often (and at once after an event).
    fallback_interval_seconds: float = Field(300.0, gt=0, le=86_400)
    # Start tracking a job an event names that the daemon does not know (submitted by another
    # tool), when its name starts with job_name_prefix and it carries job_tag ("key=value", or
    # "key" for any value; one ListTagsForResource per such job).
    track_unknown_jobs: bool = False
    job_name_prefix: str = ""
    job_tag: str = Field("", pattern=r"^([^=\s][^=]*(=.*)?)?$")

    def tag_matches(self, tags: Mapping[str, str]) -> bool:
        """Whether a job's tags carry job_tag (always, when none is set)."""
        if not self.job_tag:
            return True
        key, has_value, value = self.job_tag.partition("=")
        return key in tags and (not has_value or tags[key] == value)

    @property
    def enabled(self) -> bool:
        return bool(self.sqs_queue_url)


class LoggingSettings(Section):
    level: LogLevel = "INFO"
    # auto: journald when systemd connected our output to the journal, console on a terminal,
    # JSON lines otherwise.
    format: Literal["auto", "console", "json", "journald"] = "auto"
    journal_socket: str = "/run/systemd/journal/socket"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BATCH_POLLER_", env_nested_delimiter="__", extra="forbid"
    )

    aws: AwsSettings = Field(default_factory=AwsSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    poller: PollerSettings = Field(default_factory=PollerSettings)
    results: ResultsSettings = Field(default_factory=ResultsSettings)
    cleanup: CleanupSettings = Field(default_factory=CleanupSettings)
    submit: SubmitSettings = Field(default_factory=SubmitSettings)
    pricing: dict[str, ModelPrice] = Field(default_factory=dict)
    http: HttpSettings = Field(default_factory=HttpSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    hooks: HooksSettings = Field(default_factory=HooksSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)

    def admin_token(self) -> str:
        """The admin token: from the variable, else from the token file, else from systemd's
        credential `admin-token` (LoadCredential=); '' when none is set."""
        token = self.http.admin_token.get_secret_value()
        if token:
            return token.strip()
        source, path = "[http] admin_token_file", self.http.admin_token_file
        if not path:
            source, path = "the credential admin-token", _credential("admin-token")
        return read_secret_file(path, source) if path else ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's contents arrive as init arguments; the environment overrides them.
        return (env_settings, SeedVariables(settings_cls), init_settings)


# The seed plan's variable names, kept working; every other key is BATCH_POLLER_<SECTION>__<KEY>.
SEED_VARIABLES = {
    "BATCH_POLLER_ENABLED": ("poller", "enabled"),
    "BATCH_POLLER_INTERVAL": ("poller", "interval_seconds"),
    "BATCH_CHECK_INTERVAL": ("poller", "check_interval_seconds"),
    "BATCH_AUTO_CLEANUP": ("cleanup", "enabled"),
    "BATCH_RESULT_FETCH_MAX_RETRIES": ("results", "max_retries"),
}


class SeedVariables(PydanticBaseSettingsSource):
    """Reads the seed plan's environment variables into their sections."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, dict[str, str]] = {}
        for name, (section, key) in SEED_VARIABLES.items():
            if name in os.environ:
                values.setdefault(section, {})[key] = os.environ[name]
        return values


def read_secret_file(name: str, source: str) -> str:
    """A secret kept in a file, stripped; a file that cannot be read is a configuration error
    naming the setting. Only a regular file: a FIFO or a device would be read forever."""
    path = Path(name)
    try:
        if not path.is_file():
            reason = "not a regular file" if path.exists() else "No such file or directory"
            raise ConfigError(f"cannot read {source} {name}: {reason}")
        return path.read_text().strip()
    except OSError as error:
        raise ConfigError(f"cannot read {source} {name}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {source} {name}: not UTF-8 text") from None


def _credential(name: str) -> str:
    """The path of a credential systemd passed with LoadCredential=, or '' without it."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY", "")
    path = Path(folder) / name
    return str(path) if folder and path.is_file() else ""


def config_path(explicit: str | None) -> Path | None:
    if explicit is not None:
        return _named(explicit, "--config")
    from_env = os.environ.get("BATCH_POLLER_CONFIG")
    if from_env is not None:
        return _named(from_env, "$BATCH_POLLER_CONFIG")
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def load_settings(explicit_path: str | None = None) -> Settings:
    """The effective settings, or ConfigError with one line saying what is wrong and where."""
    path = config_path(explicit_path)
    _refuse_unknown_sections_in_environment()
    data = read_toml(path) if path else {}
    try:
        settings = Settings(**data)
    except ValidationError as error:
        raise ConfigError(_describe(error, path)) from None
    except SettingsError as error:  # an environment variable that is not the JSON it must be
        raise ConfigError(describe_settings_error(error, Settings)) from None
    http = settings.http
    token = settings.admin_token()  # an unreadable token file is a configuration error too
    for webhook in settings.hooks.webhook:
        webhook.secret_value()  # so is an unreadable secret file
    for command in settings.hooks.command:
        command.check_program()  # and a program that is not there
    if http.enabled and not http.loopback and not token:
        raise ConfigError(
            f"[http] host {http.host!r} is not a loopback address and no admin token is set: "
            "set [http] admin_token_file or BATCH_POLLER_HTTP__ADMIN_TOKEN, or bind 127.0.0.1"
        )
    return settings


def _refuse_unknown_sections_in_environment() -> None:
    """BATCH_POLLER_DATABSE__URL would be ignored, and the daemon run on another database: a
    section that does not exist is refused, with the one meant. (Keys of a known section are
    checked by the model itself.)"""
    prefix = "BATCH_POLLER_"
    for name in os.environ:
        upper = name.upper()
        if not upper.startswith(prefix) or "__" not in upper:
            continue
        section, _, rest = upper[len(prefix) :].partition("__")
        if section.lower() in Settings.model_fields:
            continue
        near = difflib.get_close_matches(section.lower(), list(Settings.model_fields), n=1)
        hint = f": did you mean {prefix}{near[0].upper()}__{rest}?" if near else ""
        raise ConfigError(f"unknown setting in environment {name}{hint}")


def _named(name: str, source: str) -> Path:
    if not name:
        # Silently falling back to the defaults would run on another database.
        raise ConfigError(f"{source} names no file (it is empty)")
    return Path(name)


def read_toml(path: Path) -> dict[str, Any]:
    # Quoted only when it holds what a terminal would act on (an escape sequence, a newline).
    shown = str(path) if str(path).isprintable() else repr(str(path))
    try:
        if path.exists() and not path.is_file():
            # A FIFO or a device would be read forever; a folder is a mistake.
            raise ConfigError(f"config file {shown} is not a regular file")
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"cannot read config file {shown}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {shown} is not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {shown} is not UTF-8 text: {error.reason}") from None
    except ValueError as error:  # an integer too long for Python to read
        raise ConfigError(
            f"config file {shown} holds a value that cannot be read: {error}"
        ) from None


def _source_of(loc: tuple[int | str, ...], path: Path | None) -> str:
    """Where a value came from: the environment wins over the file, as it does when loading."""
    env_name = "BATCH_POLLER_" + "__".join(str(p) for p in loc).upper()
    # pydantic-settings matches environment names in any case.
    env_names = {name.upper(): name for name in os.environ}
    if env_name in env_names:
        return f"environment {env_names[env_name]}"
    for name, section_key in SEED_VARIABLES.items():
        if tuple(str(p) for p in loc[:2]) == section_key and name in os.environ:
            return f"environment {name}"
    return f"config file {path}" if path else "the defaults"


def _describe(error: ValidationError, path: Path | None) -> str:
    errors = error.errors()
    # A misspelt key is also a missing one: the unknown key says what happened.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    key = ".".join(str(part) for part in first["loc"])
    where = _source_of(first["loc"], path)
    if first["type"] == "extra_forbidden":
        return f"unknown setting {key!r}{_nearest_key(first['loc'])} (from {where})"
    value = first.get("input")
    if isinstance(value, dict):  # a whole table refused by its own check: the message says why
        return f"setting {key} is invalid: {first['msg']} (from {where})"
    shown = shown_input(key, value)
    why = first["msg"].removeprefix("Value error, ")
    return f"setting {key}={shown} is invalid: {why} (from {where})"


def _nearest_key(loc: tuple[int | str, ...]) -> str:
    """`: did you mean 'poller.interval_seconds'?` for a misspelt key, or nothing."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return ""
        model = inner
    near = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    if not near:
        return ""
    parents = [str(p) for p in loc[:-1] if not isinstance(p, int)]
    return f": did you mean {'.'.join([*parents, near[0]])!r}?"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings table a field holds: its own model, or the model of its list's items."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# The URL settings that may carry a credential, and how each is masked.
_URL_MASKS: tuple[tuple[str, str, Callable[[str], str]], ...] = (
    ("database", "url", mask_url),
    ("aws", "bedrock_endpoint_url", mask_endpoint_url),
    ("aws", "s3_endpoint_url", mask_endpoint_url),
    ("aws", "sqs_endpoint_url", mask_endpoint_url),
)


def masked_document(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-ready values, every secret replaced by a mask: `config show --json`,
    for programs that read the settings (it is not a settings file: nothing feeds it back)."""
    data = settings.model_dump(mode="json")
    for section, key, mask in _URL_MASKS:
        data[section][key] = mask(data[section][key])
    data["http"]["admin_token"] = "***" if settings.http.admin_token.get_secret_value() else ""
    for hook, table in zip(settings.hooks.webhook, data["hooks"]["webhook"], strict=True):
        table["secret"] = "***" if hook.secret.get_secret_value() else ""
        table["url"] = mask_webhook_url(hook.url)
    return data


def render_toml(settings: Settings, *, mask_secrets: bool = False) -> str:
    """The settings as a TOML document, e.g. for `batch-poller config show`."""
    data = settings.model_dump(mode="json")
    data["http"]["admin_token"] = settings.http.admin_token.get_secret_value()
    # A masked value fed back would change the setting: it is left out, with a comment.
    hidden: dict[tuple[str, str], str] = {}
    if mask_secrets:
        for section, key, mask in _URL_MASKS:
            if (masked := mask(data[section][key])) != data[section][key]:
                hidden[section, key] = f"# {key} is set and not shown: {masked}"
        if data["http"]["admin_token"]:
            hidden["http", "admin_token"] = "# admin_token is set and not shown"
    lines: list[str] = []
    for section, values in data.items():
        if section == "pricing":
            for model, price in values.items():
                lines.append(f"\n[pricing.{_toml_value(model)}]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in price.items()]
            continue
        if section == "hooks":
            lines += _hook_tables(settings.hooks, values, mask_secrets)
            continue
        lines.append(f"\n[{section}]")
        lines += [hidden.get((section, k)) or f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def _hook_tables(hooks: HooksSettings, values: dict[str, Any], mask_secrets: bool) -> list[str]:
    """[hooks] and its [[hooks.webhook]] / [[hooks.command]] tables. A masked secret is left
    out, with a comment, so that the output fed back never changes the secret."""
    lines = ["\n[hooks]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if not isinstance(v, list)]
    for kind in ("webhook", "command"):
        for hook, table in zip(getattr(hooks, kind), values[kind], strict=True):
            lines.append(f"\n[[hooks.{kind}]]")
            for key, value in table.items():
                if key == "secret":
                    secret = hook.secret.get_secret_value()
                    if secret and mask_secrets:
                        lines.append("# secret is set and not shown")
                    elif secret:
                        lines.append(f"secret = {_toml_value(secret)}")
                    continue
                if key == "url" and mask_secrets and mask_webhook_url(value) != value:
                    # Masked, it would name another receiver if fed back: left out instead.
                    lines.append(f"# url is set and not shown: {mask_webhook_url(value)}")
                    continue
                lines.append(f"{key} = {_toml_value(value)}")
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # A TOML basic string is a JSON string, but for DEL, which TOML wants escaped too.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")

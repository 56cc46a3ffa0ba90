"""The CLI's side of the admin API: `status`, `pause`, `resume`, and `--remote` commands talk
to the running daemon at the address in the config, with the token from the config."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
from rich.console import Console
from rich.table import Table
from rich.text import Text

from batch_poller.cli_errors import CommandError
from batch_poller.config import Settings
from batch_poller.domain import JOB_ARN_PATTERN

# `status`, `pause` and `resume` are answered at once by a daemon that is alive.
ANSWER_SECONDS = 30.0
# A pass or a cleanup may take minutes: many jobs, large folders.
WORK_SECONDS = 600.0
# A job id, or a job name as Bedrock allows them (and `_`): nothing that changes the path.
JOB_ID_OR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*")
# An ARN's own characters, its one "/" before the job id: no "..", "?" or "#" in a partition.
ARN_CHARACTERS = re.compile(r"[a-z0-9:-]+/[a-z0-9]+")

STATUS_PATH = "/api/batch/poller/status"


def daemon_url(settings: Settings) -> str:
    host = settings.http.host
    # A daemon listening on every address is reached on the loopback one.
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{settings.http.port}"


async def call_daemon(
    settings: Settings,
    method: str,
    path: str,
    body: Any = None,
    *,
    expect: tuple[str, ...] = (),
    answer_within: float = WORK_SECONDS,
) -> dict[str, Any]:
    """The daemon's JSON answer: an object holding the `expect` keys. No answer within
    `answer_within` seconds, a refusal or another server's answer is a CommandError."""
    headers = {}
    token = settings.admin_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = daemon_url(settings) + path
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=answer_within)) as session,
            session.request(method, url, json=body, headers=headers) as response,
        ):
            raw = await response.read()
    except TimeoutError:  # first: aiohttp's own timeouts are also ClientErrors
        raise CommandError(
            f"the daemon at {url} did not answer within {answer_within:g} s"
        ) from None
    except aiohttp.ClientError as error:
        raise CommandError(f"cannot reach the daemon at {url}: {error}") from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise CommandError(_not_the_daemons(url, "not JSON")) from None
    if response.status >= 400:
        detail = data.get("detail") if isinstance(data, dict) else None
        if not isinstance(detail, str):
            raise CommandError(_not_the_daemons(url, f"{response.status} without a detail"))
        raise CommandError(f"the daemon refused ({response.status}): {detail}")
    if not isinstance(data, dict):
        raise CommandError(_not_the_daemons(url, "not a JSON object"))
    missing = [key for key in expect if key not in data]
    if missing:
        raise CommandError(_not_the_daemons(url, f"no {missing[0]!r}"))
    return data


def _not_the_daemons(url: str, why: str) -> str:
    return f"the answer from {url} is not the daemon's ({why}): is [http] port right?"


@contextlib.contextmanager
def _reading(settings: Settings, path: str) -> Iterator[None]:
    """Reads an answer's values: values of other types than the daemon's are another server's
    answer, said in one line."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValueError):
        url = daemon_url(settings) + path
        raise CommandError(_not_the_daemons(url, "not the values it answers")) from None


def print_status(status: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(status))
        return
    table = Table(show_header=False, title="batch-poller")
    for key, value in status.items():
        if key == "replicas":
            value = "\n".join(_replica_line(replica) for replica in value) or None
        # As text: a value holding "[" (an error message) is not markup.
        table.add_row(key.replace("_", " "), Text("-" if value is None else str(value)))
    Console().print(table)


def _replica_line(replica: dict[str, Any]) -> str:
    last_pass = replica["last_pass_at"] or "no pass yet"
    held = len(replica["jobs"])
    return f"{replica['owner']} ({replica['role']}): last pass {last_pass}, {held} jobs held"


async def remote_status(settings: Settings, *, as_json: bool) -> int:
    status = await call_daemon(
        settings, "GET", STATUS_PATH, expect=("state", "replicas"), answer_within=ANSWER_SECONDS
    )
    with _reading(settings, STATUS_PATH):
        print_status(status, as_json=as_json)
    return 0


async def remote_pause(settings: Settings, *, resume: bool, as_json: bool) -> int:
    path = "/api/batch/poller/start" if resume else "/api/batch/poller/stop"
    status = await call_daemon(
        settings, "POST", path, expect=("state", "jobs_pending"), answer_within=ANSWER_SECONDS
    )
    if as_json:
        print(json.dumps(status))
    else:
        print(f"polling {status['state']}: {status['jobs_pending']} jobs pending")
    return 0


async def remote_process_completed(settings: Settings, *, as_json: bool) -> int:
    path = "/api/batch/process-completed"
    report = (await call_daemon(settings, "POST", path, expect=("report",)))["report"]
    with _reading(settings, path):
        if as_json:
            print(json.dumps(report))
            return 0
        table = Table(title="what the pass did")
        table.add_column("step")
        table.add_column("jobs", justify="right")
        for key, value in report.items():
            table.add_row(Text(str(key)), Text(str(value)))
    Console().print(table)
    return 0


def job_path(job: str) -> str:
    """The API's path of a job named by its ARN, its id or its name; anything else (which
    would reach another path, or none) is refused."""
    arn = JOB_ARN_PATTERN.match(job) is not None and ARN_CHARACTERS.fullmatch(job) is not None
    if not arn and JOB_ID_OR_NAME.fullmatch(job) is None:
        raise CommandError(
            f"{job!r} is not a job ARN, job id or job name (letters, digits and + - . _)"
        )
    # An ARN's ":" and "/" stay as they are: the API takes the ARN whole.
    return f"/api/batch/jobs/{quote(job, safe=':/')}"


async def remote_cleanup(settings: Settings, job: str, *, force: bool, as_json: bool) -> int:
    path = job_path(job)
    before = await call_daemon(
        settings, "GET", path, expect=("batch_job_arn", "cleanup", "cleanup_completed_at")
    )
    if before["cleanup"] == "done":
        document = before
        line = f"{before['batch_job_arn']}: already cleaned up at {before['cleanup_completed_at']}"
    else:
        cleanup = f"{path}/cleanup"
        document = await call_daemon(
            settings, "POST", cleanup, {"force": force}, expect=("batch_job_arn", "bytes_freed")
        )
        with _reading(settings, cleanup):
            freed = document["bytes_freed"] or 0
            line = f"{document['batch_job_arn']}: cleaned, {freed:,} bytes freed"
    print(json.dumps(document) if as_json else line)
    return 0

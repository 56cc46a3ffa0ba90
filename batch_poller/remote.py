"""The CLI's side of the admin API: `status`, `pause`, `resume`, and `--remote` commands talk
to the running daemon at the address in the config, with the token from the config."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from batch_poller.cli_errors import CommandError
from batch_poller.config import Settings


def daemon_url(settings: Settings) -> str:
    host = settings.http.host
    # A daemon listening on every address is reached on the loopback one.
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{settings.http.port}"


async def call_daemon(settings: Settings, method: str, path: str, body: Any = None) -> Any:
    headers = {}
    token = settings.admin_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = daemon_url(settings) + path
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session,
            session.request(method, url, json=body, headers=headers) as response,
        ):
            data = await response.json(content_type=None)
    except aiohttp.ClientError as error:
        raise CommandError(f"cannot reach the daemon at {url}: {error}") from None
    if response.status >= 400:
        raise CommandError(f"the daemon refused ({response.status}): {data.get('detail')}")
    return data


def print_status(status: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(status))
        return
    table = Table(show_header=False, title="batch-poller")
    for key, value in status.items():
        if key == "replicas":
            value = "\n".join(_replica_line(replica) for replica in value) or None
        table.add_row(key.replace("_", " "), "-" if value is None else str(value))
    Console().print(table)


def _replica_line(replica: dict[str, Any]) -> str:
    last_pass = replica["last_pass_at"] or "no pass yet"
    held = len(replica["jobs"])
    return f"{replica['owner']} ({replica['role']}): last pass {last_pass}, {held} jobs held"


async def remote_status(settings: Settings, *, as_json: bool) -> int:
    print_status(await call_daemon(settings, "GET", "/api/batch/poller/status"), as_json=as_json)
    return 0


async def remote_pause(settings: Settings, *, resume: bool, as_json: bool) -> int:
    path = "/api/batch/poller/start" if resume else "/api/batch/poller/stop"
    status = await call_daemon(settings, "POST", path)
    if as_json:
        print(json.dumps(status))
    else:
        print(f"polling {status['state']}: {status['jobs_pending']} jobs pending")
    return 0


async def remote_process_completed(settings: Settings, *, as_json: bool) -> int:
    report = (await call_daemon(settings, "POST", "/api/batch/process-completed"))["report"]
    if as_json:
        print(json.dumps(report))
    else:
        table = Table(title="what the pass did")
        table.add_column("step")
        table.add_column("jobs", justify="right")
        for key, value in report.items():
            table.add_row(key, str(value))
        Console().print(table)
    return 0


async def remote_cleanup(settings: Settings, job: str, *, force: bool, as_json: bool) -> int:
    path = f"/api/batch/jobs/{job}"
    before = await call_daemon(settings, "GET", path)
    if before["cleanup"] == "done":
        document = before
        line = f"{before['batch_job_arn']}: already cleaned up at {before['cleanup_completed_at']}"
    else:
        document = await call_daemon(settings, "POST", f"{path}/cleanup", {"force": force})
        freed = document["bytes_freed"] or 0
        line = f"{document['batch_job_arn']}: cleaned, {freed:,} bytes freed"
    print(json.dumps(document) if as_json else line)
    return 0

"""The bodies of `batch-poller groups`: list, show and seal the application's groups of jobs."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from batch_poller.cli_errors import CommandError
from batch_poller.clock import SystemClock
from batch_poller.commands import open_command_store
from batch_poller.config import Settings
from batch_poller.domain import parse_group_status
from batch_poller.hooks.documents import group_document
from batch_poller.store import GroupError
from batch_poller.terminal import add_literal_row, literal
from batch_poller.views import job_summary


async def list_groups(settings: Settings, status: str | None, limit: int, *, as_json: bool) -> int:
    try:
        wanted = None if status is None else parse_group_status(status)
    except ValueError as error:
        raise CommandError(str(error)) from None
    store = await open_command_store(settings)
    try:
        groups = await store.list_groups(wanted, limit=limit)
    finally:
        await store.close()
    documents = [group_document(group) for group in groups]
    if as_json:
        for document in documents:
            print(json.dumps(document))
        return 0
    table = Table(title=literal(f"{len(groups)} groups"))
    for column in ("group", "status", "jobs", "records", "ok", "errors", "cost", "compiled"):
        table.add_column(column)
    for document in documents:
        records = document["records"]
        add_literal_row(
            table,
            document["name"],
            document["status"],
            *(_cell(v) for v in (document["jobs"], records["total"], records["ok"])),
            _cell(records["error"]),
            _cell(document["cost"]),
            _cell(document["compiled_at"]),
        )
    Console().print(table)
    return 0


async def show_group(settings: Settings, name: str, *, as_json: bool) -> int:
    store = await open_command_store(settings)
    try:
        group = await store.get_group(name)
        members = [] if group is None else await store.group_members(name)
    finally:
        await store.close()
    if group is None:
        raise CommandError(f"no group {name!r}")
    document = {**group_document(group), "members": [job_summary(job) for job in members]}
    if as_json:
        print(json.dumps(document, indent=2))
        return 0
    table = Table(show_header=False, title=literal(f"group {group.name}"))
    for key, value in document.items():
        if key == "members":
            continue
        if key == "records":  # counted once compiled
            counts = f"{value['total']} ({value['ok']} ok, {value['error']} errors)"
            value = None if value["total"] is None else counts
        add_literal_row(table, key, _cell(value))
    Console().print(table)
    jobs = Table(title=literal(f"{len(members)} jobs"))
    for column in ("job", "status", "records", "errors", "cleanup"):
        jobs.add_column(column)
    for job in document["members"]:
        add_literal_row(
            jobs,
            job["job_name"] or job["job_id"],
            job["status"],
            _cell(job["total_records"]),
            _cell(job["error_records"]),
            job["cleanup"],
        )
    Console().print(jobs)
    return 0


async def seal_group(settings: Settings, name: str, *, as_json: bool) -> int:
    store = await open_command_store(settings)
    try:
        group = await store.seal_group(name, SystemClock().now())
    except GroupError as error:
        raise CommandError(str(error)) from None
    finally:
        await store.close()
    if as_json:
        print(json.dumps(group_document(group)))
    elif group.status.is_compiled:
        print(f"group {group.name}: sealed and compiled, {group.status.value}")
    else:
        print(f"group {group.name}: sealed; compiled once its {group.jobs} jobs have settled")
    return 0


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)

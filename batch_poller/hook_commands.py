"""The bodies of `batch-poller hooks`: the dead letters, and sending them again."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from batch_poller.cli_errors import CommandError
from batch_poller.clock import SystemClock
from batch_poller.commands import open_command_store
from batch_poller.config import Settings
from batch_poller.store.outbox import DeliveryState
from batch_poller.terminal import add_literal_row, literal


async def failed_deliveries(
    settings: Settings, hook: str | None, limit: int, *, as_json: bool
) -> int:
    store = await open_command_store(settings)
    try:
        dead = await store.outbox.deliveries(DeliveryState.DEAD, hook=hook, limit=limit)
    finally:
        await store.close()
    if as_json:
        for delivery in dead:
            print(json.dumps(delivery.as_dict()))
        return 0
    table = Table(title=literal(f"{len(dead)} dead letters"))
    for column in ("delivery", "hook", "event", "subject", "attempts", "last error"):
        table.add_column(column)
    for delivery in dead:
        add_literal_row(
            table,
            str(delivery.id),
            delivery.hook,
            delivery.type,
            delivery.group_name or delivery.batch_job_arn or "-",
            str(delivery.attempts),
            delivery.last_error or "-",
        )
    Console().print(table)
    return 0


async def retry_deliveries(
    settings: Settings,
    ids: list[int],
    *,
    every: bool,
    hook: str | None = None,
    to: str | None = None,
) -> int:
    """Dead letters back in the queue: those named, or every one with `every`, of the hooks
    configured (or of `hook`); with `to`, for that configured hook instead (the way back for
    the events of a hook that was renamed or removed). The running daemon sends them within
    [hooks] poll_seconds."""
    if bool(ids) == every:
        raise CommandError("hooks retry takes delivery numbers (see `hooks failed`) or --all")
    configured = [h.name for h in settings.hooks.all()]
    for name in (to,) if to is not None else (hook,):
        if name is not None and name not in configured:
            names = ", ".join(configured) or "none is configured"
            raise CommandError(
                f"no hook {name!r} in the configuration ([[hooks.*]] names: {names})"
            )
    if to is not None:
        sources: list[str] | None = None if hook is None else [hook]
    else:
        sources = [hook] if hook else configured
    store = await open_command_store(settings)
    try:
        count = await store.outbox.retry_dead(
            SystemClock().now(), None if every else ids, hooks=sources, to=to
        )
    finally:
        await store.close()
    if not count:
        among = "" if every else f" among {', '.join(map(str, ids))}"
        which = "" if to is not None else " of a configured hook"
        raise CommandError(f"no dead letter{which} to send again{among} (see `hooks failed`)")
    target = "" if to is None else f" for hook {to}"
    print(f"{count} dead letters queued again{target}; the daemon sends them at its next look")
    return 0

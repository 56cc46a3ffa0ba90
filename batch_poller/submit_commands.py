"""The body of `batch-poller submit`: local JSONL files to tracked Bedrock jobs."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from batch_poller.app import open_runtime
from batch_poller.cli_errors import CommandError
from batch_poller.commands import open_command_store
from batch_poller.config import Settings
from batch_poller.submission.lines import SubmitError
from batch_poller.submission.submit import SubmitRequest, submit
from batch_poller.terminal import literal, waiting


def parse_tags(pairs: list[str]) -> dict[str, str]:
    """`key=value` pairs, each key once; CommandError naming a pair that is not one."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise CommandError(f"--tag {pair!r}: give it as key=value")
        if key in tags:
            raise CommandError(f"--tag {key!r} is given twice")
        tags[key] = value
    return tags


async def submit_files(
    settings: Settings,
    files: list[str],
    *,
    model_id: str,
    role_arn: str,
    folder: str,
    name: str | None,
    group: str | None,
    timeout_hours: int | None,
    tags: list[str],
    as_json: bool,
) -> int:
    request = SubmitRequest(
        inputs=tuple(Path(file) for file in files),
        model_id=model_id,
        role_arn=role_arn,
        folder=folder,
        name=name,
        group=group,
        timeout_hours=timeout_hours,
        tags=parse_tags(tags),
    )
    store = await open_command_store(settings, create=True)
    async with open_runtime(settings, store=store) as rt:
        try:
            with waiting(f"checking and submitting {len(files)} file(s)"):
                jobs = await submit(rt, request)
        except SubmitError as error:
            raise CommandError(str(error)) from None
    for job in jobs:
        if as_json:
            print(json.dumps(asdict(job)))
            continue
        note = "submitted" if job.new else "already submitted"
        print(f"{job.arn}: {note} as {literal(job.name)}, {job.records} records")
    return 0

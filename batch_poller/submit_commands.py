"""The bodies of `batch-poller submit` (local JSONL files to tracked Bedrock jobs), `resubmit`
(a finished job's records worth another run) and `adopt` (jobs made elsewhere that nobody
tracks)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from batch_poller.adoption import RUNNING, adopt_jobs, untracked_jobs
from batch_poller.app import open_runtime
from batch_poller.aws.bedrock import BedrockJob
from batch_poller.cli_errors import CommandError
from batch_poller.commands import find_job, open_command_store
from batch_poller.config import Settings
from batch_poller.store import open_store
from batch_poller.store.startup import missing_sqlite_file
from batch_poller.submission.lines import SubmitError
from batch_poller.submission.resubmit import plan_resubmission, resubmit
from batch_poller.submission.submit import SubmitRequest, SubmittedJob, submit
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
    seal: bool,
    timeout_hours: int | None,
    tags: list[str],
    as_json: bool,
) -> int:
    if seal and group is None:
        raise CommandError("--seal seals the group given with --group: name it")
    request = SubmitRequest(
        inputs=tuple(Path(file) for file in files),
        model_id=model_id,
        role_arn=role_arn,
        folder=folder,
        name=name,
        group=group,
        seal=seal,
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
    return _print_submitted(jobs, as_json=as_json)


def _print_submitted(jobs: list[SubmittedJob], *, as_json: bool) -> int:
    """A line (or JSON object) a job; 1 when Bedrock refused one."""
    for job in jobs:
        if as_json:
            print(json.dumps(asdict(job)))
            continue
        line = f"{literal(job.name)}: {job.state}, {job.records} records"
        if job.arn:
            line += f", {job.arn}"
        if job.state == "queued":
            line += " (the daemon submits it when the model's quota has room)"
        print(line + (f": {literal(job.error)}" if job.error else ""))
    return 1 if any(job.state == "refused" for job in jobs) else 0


def parse_since(text: str | None) -> datetime | None:
    """An ISO date or time; a date is its midnight UTC, a time without a zone is UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--since {text!r}: give a date or time, as 2026-11-01 or 2026-11-01T08:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def adopt_command(
    settings: Settings,
    *,
    name_prefix: str | None,
    since: str | None,
    dry_run: bool,
    as_json: bool,
) -> int:
    after = parse_since(since)
    if name_prefix is not None and not name_prefix:
        raise CommandError("--name-prefix '': give the start of the jobs' names")
    if dry_run and missing_sqlite_file(settings.database.url) is not None:
        # Nothing tracked yet, and a dry run creates nothing: every job is untracked.
        store = await open_store("sqlite://")
    else:
        store = await open_command_store(settings, create=True)
    async with open_runtime(settings, store=store) as rt:
        with waiting("listing Bedrock's jobs"):
            found = await untracked_jobs(rt, name_prefix=name_prefix, since=after)
        adopted = [] if dry_run else await adopt_jobs(rt, found)
    if as_json:
        for job in found:
            print(json.dumps(_untracked_document(job, tracked=not dry_run)))
        return 0
    running = sum(job.status in RUNNING for job in found)
    for job in found:
        state = "RUNNING" if job.status in RUNNING else "ended"
        when = job.submitted_at.isoformat(timespec="seconds") if job.submitted_at else "?"
        name = literal(job.name or "")
        print(f"{job.arn}  {name}  {job.status.value} ({state}), submitted {when}")
    outcome = f"{len(found)} would be tracked" if dry_run else f"{len(adopted)} tracked now"
    print(f"{len(found)} untracked jobs, {running} running or waiting to run: {outcome}")
    return 0


def _untracked_document(job: BedrockJob, *, tracked: bool) -> dict[str, object]:
    return {
        "arn": job.arn,
        "name": job.name,
        "status": job.status.value,
        "running": job.status in RUNNING,
        "submitted_at": job.submitted_at.isoformat() if job.submitted_at else None,
        "tracked": tracked,
    }


def parse_codes(text: str | None) -> list[str] | None:
    """`--errors 429,ThrottlingException`: the error codes to run again."""
    if text is None:
        return None
    codes = [code.strip() for code in text.split(",") if code.strip()]
    if not codes:
        raise CommandError(f"--errors {text!r}: give error codes, separated by commas")
    return codes


async def resubmit_command(
    settings: Settings,
    job_ref: str | None,
    *,
    group: str | None,
    errors: str | None,
    role_arn: str | None,
    folder: str | None,
    dry_run: bool,
    as_json: bool,
) -> int:
    if (job_ref is None) == (group is None):
        raise CommandError("name the job to resubmit, or --group NAME: one of them")
    codes = parse_codes(errors)
    store = await open_command_store(settings)
    async with open_runtime(settings, store=store) as rt:
        if job_ref is not None:
            jobs = [await find_job(rt.store, job_ref)]
        elif not (jobs := await rt.store.group_members(group or "")):
            raise CommandError(f"no group {group!r}, or a group with no jobs")
        try:
            plan = await plan_resubmission(rt, jobs, codes)
            by_code = dict(sorted(plan.counts().items()))
            if as_json and dry_run:
                print(json.dumps({"records": len(plan.records), "by_code": by_code}))
            elif not as_json:
                counts = ", ".join(f"{n} {code}" for code, n in by_code.items())
                print(
                    f"{len(plan.records)} records to run again from {len(plan.jobs)} job(s)"
                    + (f": {counts}" if counts else "")
                )
            if dry_run:
                if not plan.records:
                    raise CommandError("nothing to run again")
                return 0
            with waiting("submitting the records to run again"):
                jobs_made = await resubmit(rt, plan, role_arn=role_arn, folder=folder)
        except SubmitError as error:
            raise CommandError(str(error)) from None
    return _print_submitted(jobs_made, as_json=as_json)

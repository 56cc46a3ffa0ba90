"""The bodies of the CLI's local commands: open the store (and AWS where needed), act, print."""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from batch_poller.app import build_supervisor, open_configured_store, open_runtime
from batch_poller.cli_errors import CommandError
from batch_poller.clock import SystemClock
from batch_poller.config import Settings
from batch_poller.domain import JobStatus, Step, next_step, parse_job_status
from batch_poller.export import ExportError, ExportFormat, write_export, write_parquet
from batch_poller.masking import mask_url
from batch_poller.rows import JobRow
from batch_poller.store import (
    JobStore,
    RecordScope,
    StoredRecord,
    describe_database_error,
    upgrade,
)
from batch_poller.store.startup import missing_sqlite_file
from batch_poller.supervisor import JobHeld
from batch_poller.terminal import ago, job_details, jobs_table, print_table, waiting
from batch_poller.tracking import TrackError, track_jobs
from batch_poller.views import job_document, job_summary, why_folders_are_kept


async def track(
    settings: Settings,
    arns: list[str],
    input_prefix: str | None,
    *,
    group: str | None = None,
    seal: bool = False,
) -> int:
    store = await open_command_store(settings, create=True)
    async with open_runtime(settings, store=store) as rt:
        try:
            with waiting(f"reading {len(arns)} job(s) from Bedrock"):
                tracked = await track_jobs(rt, arns, input_prefix, group=group, seal=seal)
        except TrackError as error:
            raise CommandError(str(error)) from None
        found = None if group is None else await rt.store.get_group(group)
    for item in tracked:
        note = "now tracked" if item.new else "already tracked"
        print(f"{item.arn}: {note} ({item.bedrock_status} at Bedrock)")
    if found is not None:
        print(f"group {found.name}: {found.jobs} jobs, {found.status.value}")
    return 0


async def list_jobs(
    settings: Settings, status: str | None, limit: int, *, as_json: bool, wide: bool = False
) -> int:
    wanted = _status(status)
    store = await open_command_store(settings)
    try:
        jobs = await store.list_jobs(wanted, limit=limit)
    finally:
        await store.close()
    if as_json:
        for job in jobs:
            print(json.dumps(job_summary(job)))
        return 0
    now = SystemClock().now()
    title = f"{len(jobs)} tracked jobs" + (f" ({wanted.value})" if wanted else "")
    print_table(jobs_table(jobs, now, title=title, wide=wide), wide=wide)
    return 0


async def show_job(settings: Settings, job_ref: str, *, as_json: bool) -> int:
    store = await open_command_store(settings)
    try:
        job = await find_job(store, job_ref)
    finally:
        await store.close()
    document = job_document(job)
    if as_json:
        print(json.dumps(document, indent=2))
        return 0
    print_table(job_details(job, SystemClock().now()))
    return 0


async def process_completed(settings: Settings, *, as_json: bool = False) -> int:
    async with open_runtime(settings, store=await open_command_store(settings)) as rt:
        with waiting("one pass: checking, fetching and cleaning up"):
            report = await build_supervisor(rt).run_pass(check_all=False, retry_failed=True)
    counts = report.as_dict()
    done = ", ".join(f"{n} {what}" for what, n in counts.items() if what != "jobs" and n)
    _say(as_json, f"one pass: {counts['jobs']} jobs ({done or 'nothing to do'})", **counts)
    for held in report.held:
        # Without this a pass that found its jobs leased would say only {"jobs": 0}.
        until = "until it runs out" if held.until is None else f"until {held.until.isoformat()}"
        print(
            f"batch-poller: {held.arn} left alone: leased by {held.owner} {until}",
            file=sys.stderr,
        )
    return 0


async def cleanup_job(
    settings: Settings, job_ref: str, *, force: bool = False, as_json: bool = False
) -> int:
    async with open_runtime(settings, store=await open_command_store(settings)) as rt:
        job = await find_job(rt.store, job_ref)
        now = rt.clock.now()
        if job.cleanup_completed_at is not None:
            _say(
                as_json,
                f"{job.batch_job_arn}: already cleaned up {ago(job.cleanup_completed_at, now)}",
                job=job.batch_job_arn,
                outcome="already_cleaned",
                bytes_freed=job.bytes_freed,
            )
            return 0
        if next_step(job) is not Step.CLEAN:
            raise CommandError(why_folders_are_kept(job))
        try:
            outcome = await build_supervisor(rt).clean_now(job, force=force)
        except JobHeld as held:
            raise CommandError(str(held)) from None
        cleaned = await rt.store.get_job(job.batch_job_arn)
    assert cleaned is not None
    if cleaned.cleanup_completed_at is None:
        raise CommandError(f"cleanup of {cleaned.batch_job_arn} failed: {cleaned.last_error}")
    _say(
        as_json,
        f"{cleaned.batch_job_arn}: {outcome.value}, {cleaned.bytes_freed or 0:,} bytes freed",
        job=cleaned.batch_job_arn,
        outcome=outcome.value,
        bytes_freed=cleaned.bytes_freed,
    )
    return 0


def _say(as_json: bool, line: str, **document: object) -> None:
    """A command's answer: one line for a person, or one JSON object with --json."""
    print(json.dumps(document) if as_json else line)


async def export_records(
    settings: Settings,
    job_ref: str | None,
    *,
    group: str | None = None,
    record_id: str | None = None,
    fmt: ExportFormat,
    errors_only: bool,
    output: str | None,
) -> int:
    """Streams the records of a job, a group or one record id to a file (written whole, then
    renamed into place) or stdout."""
    if [job_ref, group, record_id].count(None) != 2:
        raise CommandError("export takes one of: a JOB, --group NAME, --record-id ID")
    if fmt == "parquet" and output is None:
        raise CommandError("a parquet export is a file: name it with -o FILE")
    if output is not None:
        _check_export_target(output)
    store = await open_command_store(settings)
    try:
        if job_ref is not None:
            job = await find_job(store, job_ref)
            scope, what = RecordScope(job=job.batch_job_arn), job.batch_job_arn
        elif group is not None:
            found = await store.get_group(group)
            if found is None:
                raise CommandError(f"no group {group!r}")
            scope, what = RecordScope(group=group), f"group {group}"
            if not found.status.is_compiled:
                print(
                    f"batch-poller: group {group} is {found.status.value}, not compiled yet: "
                    "these are the records of its jobs so far",
                    file=sys.stderr,
                )
        else:
            scope, what = RecordScope(record_id=record_id), f"record id {record_id}"
        rows = store.stream_records(scope, errors_only=errors_only)
        if output is None:
            try:
                count = await write_export(rows, fmt, sys.stdout.write)
                sys.stdout.flush()
            except BrokenPipeError:
                # The reader went away (`| head`): what it read is what it wanted.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
        else:
            count = await _export_to_file(rows, fmt, Path(output))
    finally:
        await store.close()
    if output is not None:
        print(f"{what}: {count} records written to {output}", file=sys.stderr)
    return 0


def _check_export_target(output: str) -> None:
    """An export goes to a new or regular file, put in place by a rename: a device, a pipe, a
    folder or a symbolic link at that name would be replaced by it, so they are refused."""
    path = Path(output)
    if not output or not path.name or path.name in (".", ".."):
        raise CommandError(f"-o {output!r} names no file: give a file name")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a symbolic link" if path.is_symlink() else "not a regular file"
        raise CommandError(
            f"-o {output}: {kind}, which the export would replace; give a new file name, or "
            "write to standard output and redirect it"
        )


async def _export_to_file(rows: AsyncIterator[StoredRecord], fmt: ExportFormat, path: Path) -> int:
    # A half-written export never stands under the name asked for.
    partial = path.with_name(f".{path.name}.partial")
    try:
        if fmt == "parquet":
            count = await write_parquet(rows, partial)
        else:
            with partial.open("w", encoding="utf-8", newline="") as out:
                count = await write_export(rows, fmt, out.write)
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise CommandError(f"cannot write {path}: {error.strerror or error}") from None
    except ExportError as error:
        partial.unlink(missing_ok=True)
        raise CommandError(str(error)) from None
    return count


async def upgrade_database(settings: Settings) -> int:
    store = await open_command_store(settings, create=True)
    try:
        version = await upgrade(store.engine)
    finally:
        await store.close()
    print(f"database schema at version {version}")
    return 0


async def find_job(store: JobStore, job_ref: str) -> JobRow:
    """The job an ARN, a job id or a job name names; else a refusal naming near names."""
    named = await store.jobs_named_by(job_ref)
    if len(named) == 1:
        return named[0]
    if named:
        ids = ", ".join(j.job_id for j in named)
        raise CommandError(f"{len(named)} jobs are named {job_ref!r}: name one by its id ({ids})")
    near = difflib.get_close_matches(job_ref, await store.job_names(), n=3)
    hint = f": did you mean {' or '.join(repr(name) for name in near)}?" if near else ""
    raise CommandError(f"no tracked job {job_ref!r} (by ARN, id or name){hint}")


async def open_command_store(settings: Settings, *, create: bool = False) -> JobStore:
    """The store with the configured lock waits; a database that cannot be opened is one line.

    Only a command that starts tracking (`track`, `db upgrade`) may `create` a SQLite file: any
    other refuses a file that is not there, instead of creating an empty one and answering as
    if nothing were tracked.
    """
    database = settings.database
    if not create and (missing := missing_sqlite_file(database.url)) is not None:
        raise CommandError(
            f"no database at {missing}: nothing has been tracked with this configuration "
            "([database] url; with no config file, from --config, $BATCH_POLLER_CONFIG or "
            "/etc/batch-poller/config.toml, it is batch-poller.db in the current folder)"
        )
    try:
        return await open_configured_store(settings)
    except SQLAlchemyError as error:
        operation = f"cannot open the database {mask_url(database.url)}"
        raise CommandError(describe_database_error(operation, error)) from None
    except OSError as error:  # a host that does not resolve, a port nobody listens on
        reason = error.strerror or str(error)
        raise CommandError(f"cannot open the database {mask_url(database.url)}: {reason}") from None
    except (ValueError, RuntimeError) as error:  # an unsupported URL, a newer schema
        raise CommandError(str(error)) from None


def _status(status: str | None) -> JobStatus | None:
    if status is None:
        return None
    try:
        return parse_job_status(status)
    except ValueError as error:
        raise CommandError(str(error)) from None

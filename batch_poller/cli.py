"""The `batch-poller` command. Thin: each subcommand parses its arguments and calls the package."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from batch_poller import __version__
from batch_poller.cli_errors import CommandError
from batch_poller.config import EX_CONFIG, LOG_LEVELS, ConfigError, Settings, load_settings
from batch_poller.domain import JobStatus
from batch_poller.extras import require_extra
from batch_poller.logging import configure_logging

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by SIGINT
JSON_HELP = "print JSON instead of text"
MAX_LIMIT = 100_000
LIMIT_HELP = f"at most this many, 1 to {MAX_LIMIT:,} (default 100)"
Command = Callable[[argparse.Namespace, Settings | None], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = sys.argv[1:] if argv is None else list(argv)
    for argument in arguments:
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            # Bytes that are not UTF-8 (a name from another encoding): no job, file or group
            # can be named so, and they would fail later with a traceback.
            parser.error(f"the argument {argument!r} is not UTF-8 text")
    args = parser.parse_args(arguments)
    if not hasattr(args, "command"):
        parser.print_help()
        return 2
    settings = None
    if args.needs_settings:
        try:
            settings = load_settings(args.config)
        except ConfigError as error:
            print(f"batch-poller: configuration error: {error}", file=sys.stderr)
            return EX_CONFIG
    # The demo draws its own progress; its log shows only what went wrong.
    quiet = "WARNING" if args.command is _demo else "INFO"
    if settings is None:
        configure_logging(args.log_level or quiet)
    else:
        logging = settings.logging
        configure_logging(args.log_level or logging.level, logging.format, logging.journal_socket)
    try:
        result: int = args.command(args, settings)
    except CommandError as error:
        print(f"batch-poller: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        # What was committed stays; a command run again picks up from there.
        print(f"batch-poller: {args.command_name} interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        # Loaded by any command that asked AWS: not imported here, the CLI starts light.
        aws = sys.modules.get("batch_poller.aws.errors")
        if aws is not None and isinstance(error, aws.AwsError):
            print(f"batch-poller: {error}", file=sys.stderr)
            return EXIT_ERROR
        failure = _database_failure(args.command_name, error)
        if failure is None:
            raise
        print(f"batch-poller: {failure}", file=sys.stderr)
        return EXIT_ERROR
    return result


def _database_failure(command: str, error: Exception) -> str | None:
    """A database error as one line naming the command and the operation; None for others.
    Imported here: the store's modules are heavy, and most commands fail for other reasons."""
    from sqlalchemy.exc import SQLAlchemyError

    from batch_poller.store.errors import StoreError, describe_database_error

    if isinstance(error, StoreError):  # names its operation and the database's message
        return f"{command} failed: {error}"
    if isinstance(error, SQLAlchemyError):
        return describe_database_error(f"{command} failed", error)
    return None


def _need(settings: Settings | None) -> Settings:
    assert settings is not None, "this command is declared with settings"
    return settings


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is not from 1 to {MAX_LIMIT:,}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch-poller",
        description="Tracks Amazon Bedrock batch jobs, stores their results, cleans S3 up.",
    )
    parser.add_argument("--version", action="version", version=f"batch-poller {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="the log's least level, in any case (default: [logging] level, INFO)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def add(
        name: str, command: Command, help: str, settings: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(command=command, needs_settings=settings, command_name=name)
        return sub

    run = add("run", _run, "run the daemon until SIGTERM or SIGINT")
    run.add_argument("--once", action="store_true", help="one full pass, then exit")

    track = add("track", _track, "start tracking batch jobs")
    track.add_argument(
        "arns", nargs="+", metavar="JOB_ARN", help="the jobs' ARNs, as Bedrock gave them"
    )
    track.add_argument(
        "--input-prefix",
        metavar="S3_URI",
        help="the job's input folder, deleted at cleanup (only with one ARN)",
    )
    track.add_argument(
        "--group", metavar="NAME", help="put the jobs in this group (made if new, not sealed)"
    )
    track.add_argument(
        "--seal", action="store_true", help="then seal the group: it takes no more jobs"
    )

    submit = add("submit", _submit, "check JSONL files, submit them as batch jobs, track them")
    submit.add_argument("files", nargs="+", metavar="FILE", help="JSONL input files")
    submit.add_argument("--model", required=True, metavar="MODEL_ID", help="the Bedrock model id")
    submit.add_argument(
        "--role", required=True, metavar="ROLE_ARN", help="the IAM role Bedrock runs the job as"
    )
    submit.add_argument(
        "--bucket",
        required=True,
        metavar="S3_FOLDER",
        help="s3://BUCKET/PREFIX/: each job's input and output go in a folder below it",
    )
    submit.add_argument("--name", help="the jobs' name (default: the first file's)")
    submit.add_argument(
        "--group", metavar="NAME", help="put the jobs in this group (default: one when split)"
    )
    submit.add_argument(
        "--seal", action="store_true", help="seal --group once these jobs are tracked"
    )
    submit.add_argument(
        "--timeout-hours", type=int, metavar="N", help="Bedrock's job timeout, 24 to 168"
    )
    submit.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag (repeatable)"
    )
    submit.add_argument("--json", action="store_true", help="one JSON object per job")

    resubmit = add(
        "resubmit", _resubmit, "run a finished job's unprocessed and retryable records again"
    )
    resubmit.add_argument("job", nargs="?", metavar="JOB", help="the job: ARN, id or name")
    resubmit.add_argument("--group", metavar="NAME", help="every finished job of this group")
    resubmit.add_argument(
        "--errors",
        metavar="CODE,...",
        help="error codes to run again (default: throttling, 5xx, timeouts; never validation)",
    )
    resubmit.add_argument("--role", metavar="ROLE_ARN", help="default: the original job's role")
    resubmit.add_argument(
        "--bucket", metavar="S3_FOLDER", help="default: beside the original, if submit made it"
    )
    resubmit.add_argument("--dry-run", action="store_true", help="show the counts, submit none")
    resubmit.add_argument("--json", action="store_true", help="one JSON object per job made")

    adopt = add("adopt", _adopt, "find jobs Bedrock has that nobody tracks, and track them")
    adopt.add_argument("--name-prefix", metavar="P", help="only jobs whose name starts so")
    adopt.add_argument(
        "--since", metavar="DATE", help="only jobs submitted after this date or time (UTC)"
    )
    adopt.add_argument("--dry-run", action="store_true", help="list them, track none")
    adopt.add_argument("--json", action="store_true", help="one JSON object per job")

    jobs = add("jobs", _jobs, "list tracked jobs, newest first")
    jobs.add_argument(
        "--status",
        metavar="STATUS",
        help=f"only jobs with this status: {', '.join(status.value for status in JobStatus)}",
    )
    jobs.add_argument("--limit", type=_limit, default=100, help=LIMIT_HELP)
    jobs.add_argument(
        "--wide", action="store_true", help="every column, whatever the terminal's width"
    )
    jobs.add_argument("--json", action="store_true", help="one JSON object per line")

    show = add("show", _show, "show one tracked job")
    show.add_argument("job", metavar="JOB", help="job ARN, job id or job name")
    show.add_argument("--json", action="store_true", help=JSON_HELP)

    process = add(
        "process-completed",
        _process_completed,
        "one pass now, retrying failed fetches and pending cleanups",
    )
    process.add_argument("--remote", action="store_true", help="ask the running daemon")
    process.add_argument("--json", action="store_true", help=JSON_HELP)

    for name, command, what in (
        ("status", _status, "the running daemon's state"),
        ("pause", _pause, "pause the running daemon's polling"),
        ("resume", _resume, "resume the running daemon's polling"),
    ):
        remote = add(name, command, what)
        remote.add_argument("--json", action="store_true", help=JSON_HELP)

    cleanup = add("cleanup", _cleanup, "delete a stored job's S3 folders now")
    cleanup.add_argument("job", metavar="JOB", help="job ARN, job id or job name")
    cleanup.add_argument(
        "--force",
        action="store_true",
        help="also when result lines too long to store exist only in S3",
    )
    cleanup.add_argument("--remote", action="store_true", help="ask the running daemon")
    cleanup.add_argument("--json", action="store_true", help=JSON_HELP)

    export = add(
        "export", _export, "write stored records (a job's, a group's) as JSON lines, CSV, Parquet"
    )
    export.add_argument("job", metavar="JOB", nargs="?", help="job ARN, job id or job name")
    export.add_argument("--group", metavar="NAME", help="the records of a group's jobs")
    export.add_argument("--record-id", metavar="ID", help="every stored record with this id")
    export.add_argument(
        "--format",
        choices=["jsonl", "csv", "parquet"],
        default="jsonl",
        help="parquet needs pyarrow (the parquet extra) and -o",
    )
    export.add_argument("--errors-only", action="store_true", help="only records that failed")
    export.add_argument("-o", "--output", metavar="FILE", help="a file instead of stdout")

    groups = add("groups", _groups, "list groups of jobs, show one, or seal one")
    groups.add_argument(
        "action", nargs="?", choices=["list", "show", "seal"], default="list", help="list"
    )
    groups.add_argument("name", nargs="?", metavar="NAME", help="the group (show, seal)")
    groups.add_argument("--status", help="only groups with this status (list)")
    groups.add_argument("--limit", type=_limit, default=100, help=LIMIT_HELP)
    groups.add_argument("--json", action="store_true", help=JSON_HELP)

    hooks = add("hooks", _hooks, "events hooks gave up on: list them, or send them again")
    hooks.add_argument(
        "action", choices=["failed", "retry"], help="failed: list dead letters; retry: send again"
    )
    hooks.add_argument(
        "deliveries",
        nargs="*",
        type=_delivery_number,
        metavar="DELIVERY",
        help="delivery numbers, as `hooks failed` lists them (retry)",
    )
    hooks.add_argument("--all", action="store_true", help="every dead letter (retry)")
    hooks.add_argument("--hook", metavar="NAME", help="only this hook's")
    hooks.add_argument(
        "--to", metavar="NAME", help="send them to this configured hook instead (retry)"
    )
    hooks.add_argument("--limit", type=_limit, default=100, help=LIMIT_HELP)
    hooks.add_argument("--json", action="store_true", help=JSON_HELP)

    config = add("config", _config, "check the configuration, or show the effective settings")
    config.add_argument(
        "action",
        choices=["check", "show"],
        help="check: refuse what cannot work (exit 78); show: the effective settings as TOML",
    )
    config.add_argument("--json", action="store_true", help=JSON_HELP + " (secrets masked)")

    db = add("db", _db_upgrade, "database schema")
    db.add_argument("action", choices=["upgrade"], help="upgrade: apply missing migrations")

    def port(text: str) -> int:
        # ASCII digits only: int() also takes " 8", "+8" and "٨".
        if not (text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535):
            raise argparse.ArgumentTypeError(f"{text!r} is not a port: 0 to 65535")
        return int(text)

    def bind_host(text: str) -> str:
        # A name other than localhost would be looked up while binding, which may hang.
        import ipaddress

        if text != "localhost":
            try:
                ipaddress.ip_address(text)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{text!r} is not an IP address or localhost"
                ) from None
        return text

    def queue_name(text: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo", text):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an SQS queue name: 1 to 80 letters, digits, - and _ "
                "(a FIFO queue's ending in .fifo)"
            )
        return text

    demo = add("demo", _demo, "run the daemon on the local emulator with demo jobs", settings=False)
    demo.add_argument("--keep", metavar="DIR", help="keep the demo database in this folder")
    demo.add_argument(
        "--serve", action="store_true", help="keep the status page up afterwards, until Ctrl-C"
    )
    demo.add_argument("--port", type=port, default=0, help="status page port (0: any free)")

    emulate = add(
        "emulate", _emulate, "serve the local Bedrock batch emulator and an S3/SQS server", False
    )
    emulate.add_argument(
        "--host",
        type=bind_host,
        default="127.0.0.1",
        help="the address to listen on: an IP address or localhost (default 127.0.0.1)",
    )
    emulate.add_argument("--port", type=port, default=0, help="Bedrock emulator port (0: any free)")
    emulate.add_argument("--s3-port", type=port, default=0, help="S3/SQS server port (0: any free)")
    emulate.add_argument("--region", default="us-east-1", help="the region it says it is in")
    emulate.add_argument(
        "--events-queue",
        metavar="NAME",
        type=queue_name,
        help="create this SQS queue and send job events to it",
    )
    return parser


def _arun(coroutine: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coroutine)


def _run(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.daemon import Daemon

    return _arun(Daemon(_need(settings), args.config).run(once=args.once))


def _track(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.commands import track

    return _arun(
        track(_need(settings), args.arns, args.input_prefix, group=args.group, seal=args.seal)
    )


def _submit(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.submit_commands import submit_files

    return _arun(
        submit_files(
            _need(settings),
            args.files,
            model_id=args.model,
            role_arn=args.role,
            folder=args.bucket,
            name=args.name,
            group=args.group,
            seal=args.seal,
            timeout_hours=args.timeout_hours,
            tags=args.tag,
            as_json=args.json,
        )
    )


def _resubmit(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.submit_commands import resubmit_command

    return _arun(
        resubmit_command(
            _need(settings),
            args.job,
            group=args.group,
            errors=args.errors,
            role_arn=args.role,
            folder=args.bucket,
            dry_run=args.dry_run,
            as_json=args.json,
        )
    )


def _adopt(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.submit_commands import adopt_command

    return _arun(
        adopt_command(
            _need(settings),
            name_prefix=args.name_prefix,
            since=args.since,
            dry_run=args.dry_run,
            as_json=args.json,
        )
    )


def _jobs(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.commands import list_jobs

    return _arun(
        list_jobs(_need(settings), args.status, args.limit, as_json=args.json, wide=args.wide)
    )


def _show(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.commands import show_job

    return _arun(show_job(_need(settings), args.job, as_json=args.json))


def _process_completed(args: argparse.Namespace, settings: Settings | None) -> int:
    if args.remote:
        from batch_poller.remote import remote_process_completed

        return _arun(remote_process_completed(_need(settings), as_json=args.json))
    from batch_poller.commands import process_completed

    return _arun(process_completed(_need(settings), as_json=args.json))


def _export(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.commands import export_records

    return _arun(
        export_records(
            _need(settings),
            args.job,
            group=args.group,
            record_id=args.record_id,
            fmt=args.format,
            errors_only=args.errors_only,
            output=args.output,
        )
    )


def _groups(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller import group_commands

    if args.action == "list":
        return _arun(
            group_commands.list_groups(_need(settings), args.status, args.limit, as_json=args.json)
        )
    if args.name is None:
        raise CommandError(f"groups {args.action} needs the group's NAME")
    if args.action == "show":
        return _arun(group_commands.show_group(_need(settings), args.name, as_json=args.json))
    return _arun(group_commands.seal_group(_need(settings), args.name, as_json=args.json))


def _hooks(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller import hook_commands

    if args.action == "failed":
        return _arun(
            hook_commands.failed_deliveries(
                _need(settings), args.hook, args.limit, as_json=args.json
            )
        )
    return _arun(
        hook_commands.retry_deliveries(
            _need(settings), args.deliveries, every=args.all, hook=args.hook, to=args.to
        )
    )


def _delivery_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not a delivery number")
    return int(text)


def _status(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.remote import remote_status

    return _arun(remote_status(_need(settings), as_json=args.json))


def _pause(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.remote import remote_pause

    return _arun(remote_pause(_need(settings), resume=False, as_json=args.json))


def _resume(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.remote import remote_pause

    return _arun(remote_pause(_need(settings), resume=True, as_json=args.json))


def _cleanup(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.commands import cleanup_job

    if args.remote:
        from batch_poller.remote import remote_cleanup

        return _arun(remote_cleanup(_need(settings), args.job, force=args.force, as_json=args.json))
    return _arun(cleanup_job(_need(settings), args.job, force=args.force, as_json=args.json))


def _config(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.config import config_path, masked_document, render_toml

    source = config_path(args.config)
    if args.action == "show" and args.json:
        print(json.dumps(masked_document(_need(settings)), indent=2))
    elif args.action == "show":
        print(render_toml(_need(settings), mask_secrets=True), end="")
    elif args.json:
        print(json.dumps({"valid": True, "file": None if source is None else str(source)}))
    else:
        print(f"configuration is valid ({source or 'defaults and environment'})")
    return 0


def _db_upgrade(args: argparse.Namespace, settings: Settings | None) -> int:
    from batch_poller.commands import upgrade_database

    return _arun(upgrade_database(_need(settings)))


def _demo(args: argparse.Namespace, settings: Settings | None) -> int:
    require_extra("moto", "emulator", "the demo (it runs the local emulator)")
    from batch_poller.demo import run_demo

    return _arun(run_demo(keep=args.keep, serve=args.serve, port=args.port))


def _emulate(args: argparse.Namespace, settings: Settings | None) -> int:
    require_extra("moto", "emulator", "the emulator")
    from batch_poller.emulator.server import serve_until_signalled

    asyncio.run(
        serve_until_signalled(
            host=args.host,
            port=args.port,
            s3_port=args.s3_port,
            region=args.region,
            events_queue=args.events_queue,
            announce=lambda line: print(line, flush=True),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

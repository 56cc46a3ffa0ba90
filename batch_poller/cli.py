"""The `batch-poller` command. Thin: each subcommand parses its arguments and calls the package."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from batch_poller import __version__
from batch_poller.logging import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help()
        return 2
    configure_logging(args.log_level)
    result: int = args.command(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batch-poller", description=__doc__)
    parser.add_argument("--version", action="version", version=f"batch-poller {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    commands = parser.add_subparsers(title="commands")

    emulate = commands.add_parser(
        "emulate", help="serve the local Bedrock batch emulator and an S3/SQS server"
    )
    emulate.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    emulate.add_argument("--port", type=int, default=0, help="Bedrock emulator port (0: any free)")
    emulate.add_argument("--s3-port", type=int, default=0, help="S3/SQS server port (0: any free)")
    emulate.add_argument("--region", default="us-east-1")
    emulate.add_argument(
        "--events-queue", metavar="NAME", help="create this SQS queue and send job events to it"
    )
    emulate.set_defaults(command=_emulate)

    demo = commands.add_parser("demo", help="run jobs of several model families on the emulator")
    demo.set_defaults(command=_demo)
    return parser


def _emulate(args: argparse.Namespace) -> int:
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


def _demo(args: argparse.Namespace) -> int:
    from batch_poller.demo import run_demo

    return asyncio.run(run_demo())


if __name__ == "__main__":
    sys.exit(main())

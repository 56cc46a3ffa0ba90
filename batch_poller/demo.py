"""`batch-poller demo`: the daemon on the local emulator, with jobs of several model families.

It needs no AWS account: everything runs on loopback, the database is SQLite in a temporary
folder. Its jobs cover the cases a user meets: plain success, records that fail, a job that
fails, and a job only partly completed.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from batch_poller.app import build_supervisor, open_runtime
from batch_poller.aws.s3 import S3Uri
from batch_poller.aws.session import aws_session
from batch_poller.cli_errors import CommandError
from batch_poller.config import HttpSettings, Settings
from batch_poller.domain import JobStatus
from batch_poller.emulator.server import EMULATOR_CREDENTIALS, Endpoints, running_emulator
from batch_poller.http.server import HttpServer, start_http
from batch_poller.rows import GroupRow, JobRow
from batch_poller.runtime import Runtime
from batch_poller.supervisor import Supervisor
from batch_poller.terminal import compact_table, job_label, money, short_count, size
from batch_poller.tracking import track_jobs

EMULATOR_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": EMULATOR_CREDENTIALS["aws_access_key_id"],
    "AWS_SECRET_ACCESS_KEY": EMULATOR_CREDENTIALS["aws_secret_access_key"],
}

BUCKET = "batch-poller-demo"
ROLE_ARN = "arn:aws:iam::123456789012:role/BedrockBatchInference"


@dataclass(frozen=True)
class DemoJob:
    name: str
    model_id: str
    records: int
    tags: dict[str, str]

    def model_input(self, index: int) -> dict[str, Any]:
        text = f"Summarise support ticket {index} of the {self.name} queue in one sentence."
        if "claude" in self.model_id:
            return {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 200,
                "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
            }
        if "titan-embed" in self.model_id:
            return {"inputText": text}
        if "llama" in self.model_id:
            return {"prompt": text, "max_gen_len": 200}
        return {
            "schemaVersion": "messages-v1",
            "messages": [{"role": "user", "content": [{"text": text}]}],
        }


DEMO_GROUP = "tickets-week-48"
DEMO_JOBS = [
    DemoJob("tickets-nova", "amazon.nova-lite-v1:0", 120, {}),
    DemoJob(
        "tickets-claude",
        "anthropic.claude-3-haiku-20240307-v1:0",
        80,
        {"emulator:error-rate": "0.1"},
    ),
    DemoJob("tickets-embed", "amazon.titan-embed-text-v2:0", 60, {}),
    DemoJob(
        "tickets-llama",
        "meta.llama3-1-8b-instruct-v1:0",
        40,
        {"emulator:outcome": "PartiallyCompleted"},
    ),
    DemoJob(
        "tickets-doomed",
        "amazon.nova-micro-v1:0",
        30,
        {
            "emulator:outcome": "Failed",
            "emulator:failure-message": "Validation of the model input failed",
        },
    ),
]


async def submit_demo_jobs(endpoints: Endpoints, region: str) -> list[str]:
    session = aws_session(region, **EMULATOR_CREDENTIALS)
    async with (
        session.client("s3", endpoint_url=endpoints.s3) as s3,
        session.client("bedrock", endpoint_url=endpoints.bedrock) as bedrock,
    ):
        await s3.create_bucket(Bucket=BUCKET)
        arns = []
        for job in DEMO_JOBS:
            lines = (
                json.dumps({"recordId": f"{job.name}-{i:05d}", "modelInput": job.model_input(i)})
                for i in range(job.records)
            )
            key = f"input/{job.name}/records.jsonl"
            await s3.put_object(Bucket=BUCKET, Key=key, Body="\n".join(lines).encode())
            response = await bedrock.create_model_invocation_job(
                jobName=job.name,
                roleArn=ROLE_ARN,
                modelId=job.model_id,
                inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/{key}"}},
                outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/output/"}},
                tags=[{"key": k, "value": v} for k, v in job.tags.items()],
            )
            arns.append(response["jobArn"])
        return arns


STORED = (JobStatus.COMPLETED, JobStatus.PARTIALLY_COMPLETED)
DEMO_PRICES = {
    "amazon.nova-lite-v1:0": ("0.00003", "0.00012"),
    "amazon.nova-micro-v1:0": ("0.0000175", "0.00007"),
    "anthropic.claude-3-haiku-20240307-v1:0": ("0.000125", "0.000625"),
    "amazon.titan-embed-text-v2:0": ("0.00001", "0"),
    "meta.llama3-1-8b-instruct-v1:0": ("0.00011", "0.00011"),
}


def demo_settings(endpoints: Endpoints, folder: Path, region: str) -> Settings:
    return Settings(
        aws={
            "region": region,
            "bedrock_endpoint_url": endpoints.bedrock,
            "s3_endpoint_url": endpoints.s3,
        },
        database={"url": f"sqlite:///{folder / 'batch-poller.db'}"},
        poller={"interval_seconds": 1, "check_interval_seconds": 0},
        results={"retry_base_seconds": 0.5},
        cleanup={"managed_prefixes": [f"s3://{BUCKET}/"]},
        pricing={
            model: {"input_per_1k": price_in, "output_per_1k": price_out}
            for model, (price_in, price_out) in DEMO_PRICES.items()
        },
    )


def settled(job: JobRow) -> bool:
    if job.status in STORED:
        return job.cleanup_completed_at is not None
    return job.status in (JobStatus.FAILED, JobStatus.RESULT_FETCH_FAILED)


async def watch(rt: Runtime, arns: list[str], console: Console) -> list[JobRow]:
    """Shows progress until every demo job is settled: stored and cleaned, or failed."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} jobs settled"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("batch-poller", total=len(arns))
        while True:
            jobs = [job for arn in arns if (job := await rt.store.get_job(arn)) is not None]
            done = sum(settled(job) for job in jobs)
            progress.update(task, completed=done)
            if done == len(arns):
                return jobs
            await asyncio.sleep(0.25)


def summary(jobs: list[JobRow]) -> Table:
    """What happened to each demo job, in 80 columns."""
    table = compact_table("What batch-poller did")
    table.add_column("job", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for header in ("records", "errors", "tokens", "cost", "freed"):
        table.add_column(header, no_wrap=True, justify="right", min_width=len(header))
    for job in jobs:
        tokens = None
        if job.input_tokens is not None or job.output_tokens is not None:
            tokens = (job.input_tokens or 0) + (job.output_tokens or 0)
        table.add_row(
            job_label(job),
            job.status.value,
            _or_dash(job.total_records),
            _or_dash(job.error_records),
            short_count(tokens),
            money(job.cost),
            size(job.bytes_freed),
        )
    return table


def group_line(group: GroupRow) -> str:
    cost = money(group.cost)
    return (
        f"Group {group.name}: {group.status.value} ({group.jobs} jobs, {group.failed_jobs} "
        f"failed; {_or_dash(group.total_records)} records, {_or_dash(group.error_records)} "
        f"errors; {cost})"
    )


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


async def run_demo(
    keep: str | None = None, *, serve: bool = False, port: int = 0, region: str = "us-east-1"
) -> int:
    """Runs the demo; with serve, the daemon and its status page stay up until Ctrl-C."""
    console = Console()
    # The demo talks only to the local emulator, which accepts any credentials.
    os.environ.update(EMULATOR_ENVIRONMENT)
    os.environ.pop("AWS_PROFILE", None)
    token = secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="batch-poller-demo-") as scratch:
        folder = _demo_folder(keep) if keep else Path(scratch)
        async with running_emulator(region=region) as endpoints:
            console.print(f"Bedrock emulator at {endpoints.bedrock}, S3 at {endpoints.s3}")
            console.print(f"Database: {folder / 'batch-poller.db'}")
            arns = await submit_demo_jobs(endpoints, region)
            settings = demo_settings(endpoints, folder, region)
            async with open_runtime(settings) as rt:
                supervisor = build_supervisor(rt)
                # Before any job is tracked: a port that cannot be had stops the demo at once.
                http = await _status_page(supervisor, port, token)
                for arn, job in zip(arns, DEMO_JOBS, strict=True):
                    await track_jobs(rt, [arn], f"s3://{BUCKET}/input/{job.name}/")
                # The week's tickets are one piece of work: compiled once all five settle.
                await rt.store.group_jobs(arns, DEMO_GROUP, rt.clock.now(), seal=True)
                console.print(f"Status page: {http.url}/ (admin token {token})")
                daemon = asyncio.create_task(supervisor.run(), name="daemon")
                jobs = await watch(rt, arns, console)
                console.print(summary(jobs))
                group = await rt.store.get_group(DEMO_GROUP)
                if group is not None:
                    console.print(group_line(group))
                left = [item.key async for item in rt.s3.list_objects(S3Uri(BUCKET, ""))]
                console.print(
                    f"Objects left in s3://{BUCKET}/: {len(left)} "
                    "(what the failed job left is kept)"
                )
                if serve:
                    console.print(f"Serving {http.url}/ until Ctrl-C.")
                    await _until_signalled()
                rt.stopping.set()
                await daemon
                await http.close()
    return 0


def _demo_folder(keep: str) -> Path:
    """The --keep folder, made if new; one that cannot be made is a refusal naming it."""
    folder = Path(keep)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CommandError(f"cannot keep the demo database in {keep}: not a folder") from None
    except OSError as error:
        raise CommandError(f"cannot keep the demo database in {keep}: {_reason(error)}") from None
    return folder


async def _status_page(supervisor: Supervisor, port: int, token: str) -> HttpServer:
    settings = HttpSettings(port=port)
    try:
        return await start_http(supervisor, settings, lambda: token)
    except OSError as error:
        raise CommandError(
            f"cannot listen on {settings.host}:{port} for the status page: {_reason(error)}"
        ) from None


def _reason(error: OSError) -> str:
    return os.strerror(error.errno) if error.errno else str(error)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

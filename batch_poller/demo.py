"""`batch-poller demo`: the emulator, a few jobs of several model families, and what became of them.

It needs no AWS account: everything runs on loopback. Its jobs cover the cases a user meets:
plain success, records that fail, a job that fails, and a job only partly completed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aioboto3
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from batch_poller.domain import BedrockStatus, job_id_from_arn
from batch_poller.emulator.server import EMULATOR_CREDENTIALS, Endpoints, running_emulator

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
    session = aioboto3.Session(region_name=region, **EMULATOR_CREDENTIALS)
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


async def wait_until_settled(
    endpoints: Endpoints, region: str, arns: list[str], console: Console
) -> list[dict[str, Any]]:
    session = aioboto3.Session(region_name=region, **EMULATOR_CREDENTIALS)
    async with session.client("bedrock", endpoint_url=endpoints.bedrock) as bedrock:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} jobs settled"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("Bedrock batch jobs", total=len(arns))
            while True:
                jobs = [await bedrock.get_model_invocation_job(jobIdentifier=a) for a in arns]
                settled = sum(BedrockStatus(j["status"]).is_terminal for j in jobs)
                progress.update(task, completed=settled)
                if settled == len(arns):
                    return jobs
                await asyncio.sleep(0.5)


async def read_manifest(endpoints: Endpoints, region: str, arn: str) -> dict[str, int] | None:
    session = aioboto3.Session(region_name=region, **EMULATOR_CREDENTIALS)
    async with session.client("s3", endpoint_url=endpoints.s3) as s3:
        try:
            response = await s3.get_object(
                Bucket=BUCKET, Key=f"output/{job_id_from_arn(arn)}/manifest.json.out"
            )
        except s3.exceptions.NoSuchKey:
            return None
        async with response["Body"] as body:
            manifest: dict[str, int] = json.loads(await body.read())
            return manifest


async def run_demo(region: str = "us-east-1") -> int:
    console = Console()
    async with running_emulator(region=region) as endpoints:
        console.print(f"Bedrock emulator at {endpoints.bedrock}, S3 at {endpoints.s3}")
        arns = await submit_demo_jobs(endpoints, region)
        jobs = await wait_until_settled(endpoints, region, arns, console)
        table = Table(title="Demo jobs")
        for column in ("job", "model", "status", "records", "ok", "errors", "tokens in/out"):
            table.add_column(column)
        for job in jobs:
            manifest = await read_manifest(endpoints, region, job["jobArn"])
            counts = manifest or {}
            table.add_row(
                job["jobName"],
                job["modelId"],
                job["status"],
                str(counts.get("totalRecordCount", "-")),
                str(counts.get("successRecordCount", "-")),
                str(counts.get("errorRecordCount", "-")),
                f"{counts.get('inputTokenCount', '-')}/{counts.get('outputTokenCount', '-')}",
            )
        console.print(table)
    return 0

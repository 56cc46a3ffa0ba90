"""Small builders the tests share: input files in S3 and batch jobs created through Bedrock."""

from __future__ import annotations

import contextlib
import json
from typing import Any

ROLE_ARN = "arn:aws:iam::123456789012:role/BedrockBatch"
BUCKET = "batch-data"
NOVA = "amazon.nova-lite-v1:0"


def nova_input(text: str) -> dict[str, Any]:
    return {
        "schemaVersion": "messages-v1",
        "messages": [{"role": "user", "content": [{"text": text}]}],
        "inferenceConfig": {"maxTokens": 256},
    }


def make_records(
    count: int, prefix: str = "rec", model_input: Any = nova_input
) -> list[dict[str, Any]]:
    return [
        {
            "recordId": f"{prefix}{i:05d}",
            "modelInput": model_input(f"prompt number {i} for {prefix}"),
        }
        for i in range(count)
    ]


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


async def put_input(s3: Any, key: str, records: list[dict[str, Any]], bucket: str = BUCKET) -> str:
    """Uploads records as a .jsonl object (creating the bucket) and returns its s3:// URI."""
    await ensure_bucket(s3, bucket)
    await s3.put_object(Bucket=bucket, Key=key, Body=jsonl(records))
    return f"s3://{bucket}/{key}"


async def ensure_bucket(s3: Any, bucket: str) -> None:
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        await s3.create_bucket(Bucket=bucket)


async def create_job(
    bedrock: Any,
    input_uri: str,
    *,
    name: str = "job-1",
    model_id: str = NOVA,
    output_uri: str = f"s3://{BUCKET}/output/",
    tags: dict[str, str] | None = None,
    **extra: Any,
) -> str:
    response = await bedrock.create_model_invocation_job(
        jobName=name,
        roleArn=ROLE_ARN,
        modelId=model_id,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": output_uri}},
        tags=[{"key": k, "value": v} for k, v in (tags or {}).items()],
        **extra,
    )
    arn: str = response["jobArn"]
    return arn


async def read_object(s3: Any, key: str, bucket: str = BUCKET) -> bytes:
    response = await s3.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        data: bytes = await body.read()
    return data


async def list_keys(s3: Any, prefix: str, bucket: str = BUCKET) -> list[str]:
    keys: list[str] = []
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return sorted(keys)


def error_code(error: Exception) -> str:
    code: str = error.response["Error"]["Code"]  # type: ignore[attr-defined]
    return code


def another_process(host: str = "elsewhere") -> Any:
    """The identity of a process on another machine, for leases that are not this test's."""
    from batch_poller.identity import Identity

    return Identity(host=host, pid=1, token="0000aa", local_key=f"{host}|another machine")


async def lease_to_another(store: Any, arn: str, now: Any, host: str = "elsewhere") -> str:
    """Leases a due job to a process on another machine, through the store's own claim;
    returns that process's owner name."""
    from batch_poller.store import JobStore

    other = JobStore(store.engine, another_process(host))
    claimed = await other.leases.claim(1, now, check_interval_seconds=0, only=arn)
    assert [job.batch_job_arn for job in claimed] == [arn], "the job was not free to lease"
    return other.owner


@contextlib.asynccontextmanager
async def leased(store: Any, arn: str, now: Any) -> Any:
    """Holds the job's lease for the store's own process while a test writes its state by hand
    (what a crash left, say), as the daemon would; gives it back afterwards."""
    claimed = await store.leases.claim(1, now, check_interval_seconds=0, only=arn)
    assert [job.batch_job_arn for job in claimed] == [arn], "the job was not free to lease"
    try:
        yield
    finally:
        await store.leases.release([arn])

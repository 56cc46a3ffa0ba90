"""3. Cleanup of many objects: S3 requests and wall time, batched deletes versus one request
per object."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from batch_poller.aws.s3 import S3Uri
from batch_poller.cleanup import delete_prefix
from bench.runtime import bench_s3, client

BUCKET = "bench-cleanup"


async def bench_cleanup(objects: int) -> dict[str, Any]:
    async with client("s3") as s3:
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            await s3.create_bucket(Bucket=BUCKET)
        await _fill(s3, "batched/", objects)
        async with bench_s3() as adapter:
            started = time.perf_counter()
            result = await delete_prefix(adapter, S3Uri(BUCKET, "batched/"))
            batched_seconds = time.perf_counter() - started
        listing_pages = -(-objects // 1000)
        await _fill(s3, "single/", objects)
        started = time.perf_counter()
        keys = await _keys(s3, "single/")
        limit = asyncio.Semaphore(16)

        async def delete(key: str) -> None:
            async with limit:
                await s3.delete_object(Bucket=BUCKET, Key=key)

        await asyncio.gather(*(delete(k) for k in keys))
        single_seconds = time.perf_counter() - started
    return {
        "objects": objects,
        "requests, batched": result.delete_requests + listing_pages,
        "DeleteObjects": result.delete_requests,
        "seconds, batched": round(batched_seconds, 2),
        "requests, one by one": objects + listing_pages,
        "seconds, one by one": round(single_seconds, 2),
    }


async def _fill(s3: Any, prefix: str, count: int) -> None:
    limit = asyncio.Semaphore(32)

    async def put(index: int) -> None:
        async with limit:
            await s3.put_object(Bucket=BUCKET, Key=f"{prefix}{index:06d}.jsonl.out", Body=b"x" * 64)

    await asyncio.gather(*(put(i) for i in range(count)))


async def _keys(s3: Any, prefix: str) -> list[str]:
    keys: list[str] = []
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys

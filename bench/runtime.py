"""The emulator and clients the benchmark shares."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
from botocore.config import Config

from batch_poller.aws.errors import RetryPolicy
from batch_poller.aws.s3 import S3
from batch_poller.emulator.server import Endpoints

ENDPOINTS: Endpoints | None = None
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, max_pool_connections=64)


def endpoints() -> Endpoints:
    assert ENDPOINTS is not None, "the benchmark starts the emulator first"
    return ENDPOINTS


@contextlib.asynccontextmanager
async def client(service: str) -> AsyncIterator[Any]:
    url = endpoints().s3 if service in ("s3", "sqs") else endpoints().bedrock
    session = aioboto3.Session(region_name="us-east-1")
    async with session.client(service, endpoint_url=url, config=CONFIG) as made:
        yield made


@contextlib.asynccontextmanager
async def bench_s3() -> AsyncIterator[S3]:
    """The project's S3 adapter, as the daemon builds it."""
    async with client("s3") as raw:
        yield S3(raw, RetryPolicy())

"""The fault proxy through a real S3 client, and the daemon's S3 layer behind it: every
fault is either survived by the retries or raised as a clean transient AwsError."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.config import Config

from batch_poller.aws.bedrock import Bedrock
from batch_poller.aws.errors import AwsError, RetryPolicy
from batch_poller.aws.s3 import S3, S3Uri
from batch_poller.aws.session import AwsSession
from batch_poller.emulator.server import Endpoints
from tests.faults.proxy import NO_FAULTS, FaultProxy, Faults
from tests.helpers import BUCKET, create_job, ensure_bucket, make_records, put_input

LINES = [f'{{"recordId":"r{i:05d}","text":"{"x" * 90}"}}'.encode() for i in range(3000)]
BIG_KEY = "proxy/big.jsonl.out"  # about 300 KB: several relayed pieces
SMALL_KEY = "proxy/manifest.json.out"
MANIFEST = b'{"totalRecordCount": 3000, "processedRecordCount": 3000}'


class Retries:
    """A RetryPolicy whose waits are recorded and take no time."""

    def __init__(self, attempts: int = 6) -> None:
        self.waits: list[float] = []
        self.policy = RetryPolicy(attempts=attempts, sleep=self._sleep)

    async def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def proxy(endpoints: Endpoints, s3: Any) -> AsyncIterator[FaultProxy]:
    await ensure_bucket(s3, BUCKET)
    await s3.put_object(Bucket=BUCKET, Key=BIG_KEY, Body=b"\n".join(LINES) + b"\n")
    await s3.put_object(Bucket=BUCKET, Key=SMALL_KEY, Body=MANIFEST)
    proxy = await FaultProxy(endpoints.s3, seed=7).start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def client(proxy: FaultProxy, aws_session: AwsSession) -> AsyncIterator[Any]:
    # One attempt per call (the daemon's RetryPolicy retries) and a short read timeout.
    config = Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=0.5)
    async with aws_session.client("s3", endpoint_url=proxy.url, config=config) as client:
        yield client


async def _all_lines(s3: S3, key: str) -> list[bytes]:
    found = []
    async for _, line in s3.lines(S3Uri(BUCKET, key), 1024 * 1024):
        assert isinstance(line, bytes)
        found.append(line)
    return found


async def test_without_faults_every_exchange_is_relayed_unchanged_on_kept_alive_connections(
    proxy: FaultProxy, client: Any
) -> None:
    s3 = S3(client, Retries().policy)

    listed = [item.key async for item in s3.list_objects(S3Uri(BUCKET, "proxy/"))]
    lines = await _all_lines(s3, BIG_KEY)
    manifest = await s3.read_bytes(S3Uri(BUCKET, SMALL_KEY))
    missing = await s3.read_bytes(S3Uri(BUCKET, "proxy/none"))
    await s3.delete_keys(BUCKET, [SMALL_KEY])

    assert listed == [BIG_KEY, SMALL_KEY]
    assert lines == LINES
    assert manifest == MANIFEST and missing is None
    assert [item.key async for item in s3.list_objects(S3Uri(BUCKET, "proxy/"))] == [BIG_KEY]
    assert proxy.counts["requests"] == 6
    assert proxy.counts.total() == proxy.counts["requests"]  # no fault was drawn


async def test_slowdown_at_a_seeded_rate_is_retried_until_it_passes(
    proxy: FaultProxy, client: Any
) -> None:
    retries = Retries()
    s3 = S3(client, retries.policy)
    proxy.faults = Faults(slowdown_rate=0.5)

    for _ in range(10):
        assert await s3.read_bytes(S3Uri(BUCKET, SMALL_KEY)) == MANIFEST

    assert proxy.counts["slowdown"] >= 3
    assert len(retries.waits) == proxy.counts["slowdown"]


async def test_slowdown_on_every_call_ends_as_a_transient_throttling_error(
    proxy: FaultProxy, client: Any
) -> None:
    s3 = S3(client, Retries(attempts=3).policy)
    proxy.faults = Faults(slowdown_rate=1.0)

    with pytest.raises(AwsError) as raised:
        await s3.read_bytes(S3Uri(BUCKET, SMALL_KEY))

    assert raised.value.code == "SlowDown"
    assert raised.value.transient and raised.value.throttled
    assert proxy.counts["slowdown"] == 3


async def test_a_reset_in_the_response_head_is_retried_until_it_passes(
    proxy: FaultProxy, client: Any
) -> None:
    retries = Retries()
    s3 = S3(client, retries.policy)
    proxy.faults = Faults(reset_rate=0.5, reset_after_bytes=20)

    for _ in range(6):
        listed = [item.key async for item in s3.list_objects(S3Uri(BUCKET, "proxy/"))]
        assert listed == [BIG_KEY, SMALL_KEY]

    assert proxy.counts["reset"] >= 2
    # aiohttp sends again once itself when a kept-alive connection drops; the rest are ours.
    assert 1 <= len(retries.waits) <= proxy.counts["reset"]


async def test_a_reset_in_the_middle_of_an_object_is_a_clean_transient_error(
    proxy: FaultProxy, client: Any
) -> None:
    s3 = S3(client, Retries().policy)
    proxy.faults = Faults(reset_rate=1.0, reset_after_bytes=100_000, path_contains=BIG_KEY)

    with pytest.raises(AwsError) as raised:
        await _all_lines(s3, BIG_KEY)

    assert raised.value.transient, raised.value
    assert proxy.counts["reset"] == 1


async def test_a_truncated_object_body_is_a_clean_transient_error(
    proxy: FaultProxy, client: Any
) -> None:
    s3 = S3(client, Retries().policy)
    proxy.faults = Faults(truncate_rate=1.0, path_contains=BIG_KEY)

    with pytest.raises(AwsError) as raised:
        await _all_lines(s3, BIG_KEY)

    assert raised.value.transient, raised.value
    assert proxy.counts["truncate"] == 1


async def test_a_truncated_small_object_is_not_returned_as_if_it_were_whole(
    proxy: FaultProxy, client: Any
) -> None:
    s3 = S3(client, Retries(attempts=2).policy)
    proxy.faults = Faults(truncate_rate=1.0, path_contains=SMALL_KEY)

    with pytest.raises(AwsError) as raised:
        await s3.read_bytes(S3Uri(BUCKET, SMALL_KEY))

    assert raised.value.transient


async def test_a_stall_past_the_read_timeout_is_transient_and_clears_at_run_time(
    proxy: FaultProxy, client: Any
) -> None:
    s3 = S3(client, Retries(attempts=2).policy)
    proxy.faults = Faults(stall_rate=1.0, stall_seconds=5.0)

    with pytest.raises(AwsError) as raised:
        await s3.read_bytes(S3Uri(BUCKET, SMALL_KEY))
    stalled = proxy.counts["stall"]
    proxy.faults = NO_FAULTS
    after = await s3.read_bytes(S3Uri(BUCKET, SMALL_KEY))

    assert raised.value.transient and raised.value.code == "ReadTimeoutError", raised.value
    assert stalled == 2
    assert after == MANIFEST


async def test_a_stall_within_the_read_timeout_only_delays_the_answer(
    proxy: FaultProxy, client: Any
) -> None:
    retries = Retries()
    s3 = S3(client, retries.policy)
    proxy.faults = Faults(stall_rate=1.0, stall_seconds=0.05)

    lines = await _all_lines(s3, BIG_KEY)

    assert lines == LINES
    assert proxy.counts["stall"] == 1 and retries.waits == []


async def test_bedrock_calls_survive_server_errors_and_stalls_at_a_seeded_rate(
    endpoints: Endpoints, bedrock: Any, s3: Any, aws_session: AwsSession
) -> None:
    uri = await put_input(s3, "proxy/input.jsonl", make_records(2))
    arn = await create_job(bedrock, uri)
    retries = Retries()
    proxy = await FaultProxy(endpoints.bedrock, seed=3).start()
    config = Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=0.5)
    try:
        async with aws_session.client("bedrock", endpoint_url=proxy.url, config=config) as client:
            bedrock_api = Bedrock(client, retries.policy)
            proxy.faults = Faults(server_error_rate=0.4, stall_rate=0.2, stall_seconds=0.05)
            jobs = [await bedrock_api.get_job(arn) for _ in range(8)]
            proxy.faults = Faults(server_error_rate=1.0)
            with pytest.raises(AwsError) as raised:
                await bedrock_api.get_job(arn)
    finally:
        await proxy.close()

    assert {job.arn for job in jobs} == {arn}
    assert proxy.counts["server_error"] >= 3 and proxy.counts["stall"] >= 1
    assert raised.value.code == "InternalServerException" and raised.value.transient

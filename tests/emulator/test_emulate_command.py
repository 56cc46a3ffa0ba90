"""`batch-poller emulate` as a user runs it: endpoints on stdout, stops on SIGTERM or SIGINT."""

from __future__ import annotations

import signal
from typing import Any

import aioboto3
import pytest

from batch_poller.emulator.process import EmulatorProcess


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_emulate_prints_endpoints_serves_and_stops_on_a_signal(signum: int) -> None:
    emulator = EmulatorProcess.start()
    try:
        endpoints = emulator.endpoints
        assert endpoints.bedrock.startswith("http://127.0.0.1:")
        assert endpoints.s3.startswith("http://127.0.0.1:")
        assert endpoints.bedrock != endpoints.s3
        session = aioboto3.Session(region_name="us-east-1")
        async with (
            session.client("bedrock", endpoint_url=endpoints.bedrock) as bedrock,
            session.client("s3", endpoint_url=endpoints.s3) as s3,
        ):
            listed: Any = await bedrock.list_model_invocation_jobs()
            buckets: Any = await s3.list_buckets()
        assert listed["invocationJobSummaries"] == []
        assert buckets["Buckets"] == []
    finally:
        emulator.process.send_signal(signum)
        code = emulator.process.wait(timeout=15)

    assert code == 0

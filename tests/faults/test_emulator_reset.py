"""The emulator is reset before every iteration of the kill campaign, while its clock tick may be
settling jobs: a reset must not make that tick fail."""

from __future__ import annotations

import asyncio
from typing import Any

from batch_poller.emulator.clock import EmulatorClock
from batch_poller.emulator.protocol import CreateRequest
from batch_poller.emulator.registry import JobRegistry
from tests.helpers import BUCKET, NOVA, ROLE_ARN, make_records, put_input


async def test_a_reset_while_the_tick_settles_jobs_does_not_fail_the_tick(
    endpoints: Any, s3: Any
) -> None:
    uri = await put_input(s3, "race/input.jsonl", make_records(1))
    registry = JobRegistry(EmulatorClock(), s3, None, account_id="123456789012", region="us-east-1")
    request = CreateRequest("race", ROLE_ARN, NOVA, uri, f"s3://{BUCKET}/out/", 24, None, {})
    await registry.create(request)

    tick = asyncio.ensure_future(registry.settle_all())
    await asyncio.sleep(0)  # the tick has gathered one settle per job; none has run yet
    registry.reset()  # as POST /_emulator/reset would, in between

    await tick
    assert list(registry.all_jobs()) == []

"""Submitting from Python, as `batch_poller.submit`: the CLI's `submit` as one call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from batch_poller.app import open_runtime
from batch_poller.config import load_settings
from batch_poller.submission.submit import SubmitRequest, SubmittedJob, submit


async def submit_files(
    inputs: Sequence[Path | str],
    *,
    model_id: str,
    role_arn: str,
    bucket: str,
    name: str | None = None,
    group: str | None = None,
    seal: bool = False,
    timeout_hours: int | None = None,
    tags: Mapping[str, str] | None = None,
    config: str | None = None,
) -> list[SubmittedJob]:
    """Checks, submits and tracks local JSONL files (or s3:// objects) as the daemon's
    configuration says: `config`, else $BATCH_POLLER_CONFIG, else /etc/batch-poller/config.toml.

        jobs = await batch_poller.submit(
            ["prompts.jsonl"], model_id="amazon.nova-lite-v1:0",
            role_arn="arn:aws:iam::123456789012:role/BedrockBatch", bucket="s3://b/batch/",
        )

    InputError (a SubmitError) names the first bad line; nothing is submitted then. The daemon
    stores the results; a job queued for room under the model's quota is submitted by it."""
    request = SubmitRequest(
        inputs=tuple(inputs),
        model_id=model_id,
        role_arn=role_arn,
        folder=bucket,
        name=name,
        group=group,
        seal=seal,
        timeout_hours=timeout_hours,
        tags=dict(tags or {}),
    )
    async with open_runtime(load_settings(config)) as rt:
        return await submit(rt, request)

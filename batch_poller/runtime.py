"""The live objects every part of the daemon shares, built in one place (app.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from batch_poller.aws.bedrock import Bedrock
from batch_poller.aws.s3 import S3
from batch_poller.clock import Clock
from batch_poller.config import Settings
from batch_poller.metrics import Metrics
from batch_poller.store import JobStore


@dataclass
class Runtime:
    store: JobStore
    bedrock: Bedrock
    s3: S3
    clock: Clock
    # Replaced as a whole on reload; readers take it once per step, so a step sees one version.
    settings: Settings
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    metrics: Metrics = field(default_factory=Metrics)

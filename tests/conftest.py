"""Fixtures shared by every test: the emulator process (Bedrock emulator + moto server) and
real clients, made as the daemon makes them, pointed at it. State is reset between tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from botocore.config import Config

from batch_poller.aws.session import AwsSession
from batch_poller.aws.session import aws_session as daemon_session
from batch_poller.emulator.control import EmulatorControl
from batch_poller.emulator.process import EmulatorProcess
from batch_poller.emulator.server import Endpoints

# The daemon's fixtures (a runtime on the emulator, a fake clock), for every test folder.
pytest_plugins = ["tests.daemon_fixtures"]

REGION = "us-east-1"
# Clients in tests never reach AWS; these keep botocore from looking for real credentials.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION=REGION,
)
# No retries: a test that injects a fault sees it, instead of botocore hiding it.
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture(scope="session")
def emulator_process() -> Iterator[EmulatorProcess]:
    process = EmulatorProcess.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
async def session_control(emulator_process: EmulatorProcess) -> AsyncIterator[EmulatorControl]:
    async with EmulatorControl(emulator_process.endpoints.bedrock) as control:
        yield control


@pytest.fixture
async def endpoints(
    emulator_process: EmulatorProcess, session_control: EmulatorControl
) -> Endpoints:
    """The emulator's endpoints, with the emulator and the moto server reset to empty."""
    await session_control.reset()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator_process.endpoints.s3}/moto-api/reset") as response,
    ):
        assert response.status == 200
    return emulator_process.endpoints


@pytest.fixture
async def control(endpoints: Endpoints, session_control: EmulatorControl) -> EmulatorControl:
    return session_control


@pytest.fixture(scope="session")
def aws_session() -> AwsSession:
    return daemon_session(REGION)


@pytest.fixture(scope="session")
async def s3(emulator_process: EmulatorProcess, aws_session: AwsSession) -> AsyncIterator[Any]:
    async with aws_session.client("s3", endpoint_url=emulator_process.endpoints.s3) as client:
        yield client


@pytest.fixture(scope="session")
async def sqs(emulator_process: EmulatorProcess, aws_session: AwsSession) -> AsyncIterator[Any]:
    async with aws_session.client("sqs", endpoint_url=emulator_process.endpoints.s3) as client:
        yield client


@pytest.fixture(scope="session")
async def bedrock(emulator_process: EmulatorProcess, aws_session: AwsSession) -> AsyncIterator[Any]:
    async with aws_session.client(
        "bedrock", endpoint_url=emulator_process.endpoints.bedrock, config=NO_RETRIES
    ) as client:
        yield client


@pytest.fixture(scope="session")
async def raw_bedrock(
    emulator_process: EmulatorProcess, aws_session: AwsSession
) -> AsyncIterator[Any]:
    """A client that sends what it is given, unchecked, so the emulator's validation is tested."""
    config = NO_RETRIES.merge(Config(parameter_validation=False))
    async with aws_session.client(
        "bedrock", endpoint_url=emulator_process.endpoints.bedrock, config=config
    ) as client:
        yield client

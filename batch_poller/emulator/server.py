"""Starts the moto server (S3, SQS) and the Bedrock emulator on loopback, and stops them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aioboto3
from aiohttp import web
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from batch_poller.cli_errors import CommandError
from batch_poller.emulator.app import build_app
from batch_poller.emulator.clock import EmulatorClock
from batch_poller.emulator.control import EmulatorControl
from batch_poller.emulator.registry import JobRegistry

ACCOUNT_ID = "123456789012"  # moto's account
TICK_SECONDS = 0.1
# The emulator's clients need credentials of some kind; moto accepts any.
EMULATOR_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class Endpoints:
    bedrock: str
    s3: str

    def environment(self) -> dict[str, str]:
        return {"BEDROCK_ENDPOINT_URL": self.bedrock, "S3_ENDPOINT_URL": self.s3}


class CannotListen(CommandError):
    """An address the emulator cannot have: a port in use, an address not on this host."""

    def __init__(self, host: str, port: int, server: str, error: OSError) -> None:
        reason = os.strerror(error.errno) if error.errno else str(error)
        super().__init__(f"cannot listen on {_url_host(host)}:{port} for the {server}: {reason}")


class MotoServer:
    """moto's S3/SQS server, served from a thread. Its socket is bound here, so an address that
    cannot be had is an error for the caller: bound by werkzeug in moto's own thread, it is a
    message on stderr and an exit of that thread, and moto's start then waits for ever."""

    def __init__(self, host: str, port: int) -> None:
        try:
            listening = socket.create_server(
                (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET
            )
        except OSError as error:
            raise CannotListen(host, port, "S3/SQS server", error) from None
        with listening:  # the server keeps a duplicate of it
            self._server = make_server(
                host,
                port,
                DomainDispatcherApplication(create_backend_app),
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=listening.fileno(),
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-server", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{_url_host(str(host))}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


@contextlib.asynccontextmanager
async def running_emulator(
    host: str = "127.0.0.1", port: int = 0, s3_port: int = 0, region: str = "us-east-1"
) -> AsyncIterator[Endpoints]:
    """The moto server and the emulator, serving until the context exits. An address either
    cannot have is CannotListen, naming it and the reason."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto = MotoServer(host, s3_port)
    try:
        s3_url = moto.url
        # aioboto3's session: its S3 client uploads a large output in parts (upload_fileobj).
        session = aioboto3.Session(region_name=region, **EMULATOR_CREDENTIALS)
        async with (
            session.client("s3", endpoint_url=s3_url) as s3,
            session.client("sqs", endpoint_url=s3_url) as sqs,
        ):
            registry = JobRegistry(EmulatorClock(), s3, sqs, account_id=ACCOUNT_ID, region=region)
            # Calls held by injected latency must not hold up a stop.
            runner = web.AppRunner(build_app(registry), access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, host, port)
            try:
                await site.start()
            except OSError as error:
                await runner.cleanup()
                raise CannotListen(host, port, "Bedrock emulator", error) from None
            ticker = asyncio.create_task(_tick(registry), name="emulator-ticker")
            try:
                bound_port = runner.addresses[0][1]
                yield Endpoints(bedrock=f"http://{_url_host(host)}:{bound_port}", s3=s3_url)
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
                await runner.cleanup()
    finally:
        moto.stop()


async def _tick(registry: JobRegistry) -> None:
    """Moves jobs on by the clock even when nobody asks, so events go out on time."""
    log = logging.getLogger("batch_poller.emulator")
    while True:
        try:
            await registry.settle_all()
        except Exception:  # one bad pass must not stop the emulator's clock
            log.exception("emulator tick failed")
        await asyncio.sleep(TICK_SECONDS)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def serve_until_signalled(
    *,
    host: str,
    port: int,
    s3_port: int,
    region: str,
    events_queue: str | None,
    announce: Callable[[str], None],
) -> None:
    """`batch-poller emulate`: print the endpoints, serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_emulator(host, port, s3_port, region) as endpoints:
        if events_queue:
            await _create_events_queue(endpoints, region, events_queue)
        for name, url in endpoints.environment().items():
            announce(f"{name}={url}")
        await stop.wait()


async def _create_events_queue(endpoints: Endpoints, region: str, name: str) -> None:
    session = aioboto3.Session(region_name=region, **EMULATOR_CREDENTIALS)
    async with session.client("sqs", endpoint_url=endpoints.s3) as sqs:
        queue_url = (await sqs.create_queue(QueueName=name))["QueueUrl"]
    async with EmulatorControl(endpoints.bedrock) as control:
        await control.configure(events_queue_url=queue_url)

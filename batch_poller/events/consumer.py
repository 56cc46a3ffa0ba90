"""The consumer of `[events] sqs_queue_url`: long-polls the queue, makes each job an event names
due at once, wakes the supervisor, and deletes the messages once that is committed.

A message that is no hint is logged, counted by reason and deleted: it never stops the
consumer. An SQS error is retried with a doubling wait; anything else that goes wrong is logged
and the consumer starts again. The state always comes from Bedrock, on the ordinary path."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import structlog
from botocore.config import Config

from batch_poller.aws.errors import AwsError
from batch_poller.aws.session import aws_session
from batch_poller.clock import sleep_until_set
from batch_poller.events.counts import EventCounts
from batch_poller.events.hints import Hint, NotAHint, Refusal, read_hint
from batch_poller.runtime import Runtime
from batch_poller.store import StoreError
from batch_poller.tracking import TrackError, track_jobs

log = structlog.get_logger("batch_poller.events")

# ReceiveMessage's longest wait and largest batch.
WAIT_SECONDS = 20
BATCH = 10
# After a failed receive or delete: the first wait, doubling up to the cap.
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0


class EventConsumer:
    """`sqs`: a client to use; by default `run` opens its own with the [aws] settings."""

    def __init__(
        self,
        rt: Runtime,
        wake: Callable[[], None],
        sqs: Any = None,
        *,
        wait_seconds: int = WAIT_SECONDS,
    ) -> None:
        self.rt = rt
        self.sqs = sqs
        self.wake = wake
        self.wait_seconds = wait_seconds
        self.counts = EventCounts()
        # Receives that failed, in all; the waits double with those in a row.
        self.failures = 0

    @property
    def queue_url(self) -> str:
        return self.rt.settings.events.sqs_queue_url

    async def run(self) -> None:
        """Receives until the daemon stops; a failure waits, then it goes on, the client
        opened again if it was this consumer's own."""
        if self.sqs is not None:
            await self._receive_until_stopped()
            return
        aws = self.rt.settings.aws
        session = aws_session(aws.region)
        # One attempt per call (the loop below retries) and a read timeout past the long poll.
        config = Config(retries={"total_max_attempts": 1}, read_timeout=WAIT_SECONDS + 20)
        endpoint = aws.sqs_endpoint_url or None
        while not self.rt.stopping.is_set():
            try:
                async with session.client("sqs", endpoint_url=endpoint, config=config) as sqs:
                    self.sqs = sqs
                    await self._receive_until_stopped()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the client could not be made: never the end of events
                self.failures += 1
                self._receiving(str(error))
                log.exception("events_client_failed", retry_in=RETRY_MAX_SECONDS)
                await self._pause(RETRY_MAX_SECONDS)

    async def _receive_until_stopped(self) -> None:
        log.info("events_consumer_started", queue_url=self.queue_url)
        in_a_row = 0
        while not self.rt.stopping.is_set():
            try:
                await self.receive_once()
                in_a_row = 0
                self._receiving(None)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # SQS, the store, or a bug: never the end of events
                in_a_row += 1
                self.failures += 1
                self._receiving(str(error))
                wait = min(RETRY_BASE_SECONDS * 2 ** (in_a_row - 1), RETRY_MAX_SECONDS)
                event = "events_store_unavailable" if isinstance(error, StoreError) else None
                if event is None and not _is_aws_error(error):
                    log.exception("events_consumer_failed", retry_in=wait)
                else:
                    log.warning(event or "events_receive_failed", error=str(error), retry_in=wait)
                await self._pause(wait)

    async def receive_once(self) -> int:
        """One ReceiveMessage and what follows it; returns how many messages it took."""
        receiving = asyncio.ensure_future(
            self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=BATCH,
                WaitTimeSeconds=self.wait_seconds,
            )
        )
        stopper = asyncio.ensure_future(self.rt.stopping.wait())
        await asyncio.wait({receiving, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not receiving.done():
            receiving.cancel()  # stopping: unreceived messages stay in the queue
            return 0
        messages = receiving.result().get("Messages", [])
        if not messages:
            return 0
        hints: list[Hint] = []
        for message in messages:
            self.counts.received += 1
            try:
                hint = read_hint(message.get("Body", ""))
                hints.append(dataclasses.replace(hint, message_id=message.get("MessageId")))
            except NotAHint as refused:
                self._refused(refused.refusal, str(refused), message.get("MessageId"))
        if hints:
            await self._take(hints)
        # Deleted only now: a crash before this line gets them again, and a hint twice is a
        # check twice, nothing more.
        await self.sqs.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                for n, message in enumerate(messages)
            ],
        )
        return len(messages)

    async def _take(self, hints: list[Hint]) -> None:
        now = self.rt.clock.now()
        tracked = await self.rt.store.make_due({hint.arn for hint in hints}, now)
        for hint in hints:
            self.counts.last_event_at = hint.at
            if hint.arn in tracked:
                self._accepted(hint)
            elif await self._adopted(hint):
                tracked.add(hint.arn)
                self._accepted(hint)
            else:
                self._refused(Refusal.UNKNOWN_JOB, f"{hint.arn} is not tracked", hint.message_id)
        if tracked:
            self.wake()

    async def _adopted(self, hint: Hint) -> bool:
        """Tracks a job nobody tracked, when the settings say to adopt it. Its name is the one
        Bedrock gives, not the event's: a forged event cannot pass a job off as another's."""
        events = self.rt.settings.events
        if not events.track_unknown_jobs:
            return False
        try:
            remote = await self.rt.bedrock.get_job(hint.arn)
            if not (remote.name or "").startswith(events.job_name_prefix):
                return False
            # Tags are read only for a job whose name fits: a call per candidate, not per event.
            if events.job_tag and not events.tag_matches(await self.rt.bedrock.job_tags(hint.arn)):
                return False
        except AwsError as error:
            log.warning("event_job_not_tracked", job_arn=hint.arn, error=str(error))
            return False
        try:
            await track_jobs(self.rt, [hint.arn])
        except TrackError as error:
            log.warning("event_job_not_tracked", job_arn=hint.arn, error=str(error))
            return False
        log.info("event_job_tracked", job_arn=hint.arn, job_name=remote.name)
        return True

    def _receiving(self, error: str | None) -> None:
        self.counts.receiving(error, self.rt.clock.now())
        queue = self.queue_url.rstrip("/").rsplit("/", 1)[-1]
        self.rt.metrics.events_receiving.labels(queue).set(0 if error else 1)

    def _accepted(self, hint: Hint) -> None:
        self.counts.accepted += 1
        self.rt.metrics.events.labels("accepted").inc()
        log.info(
            "event_hint",
            job_arn=hint.arn,
            bedrock_status=hint.status.value,
            message_id=hint.message_id,
        )

    def _refused(self, refusal: Refusal, why: str, message_id: str | None) -> None:
        self.counts.refused[refusal.value] = self.counts.refused.get(refusal.value, 0) + 1
        self.rt.metrics.events.labels(refusal.value).inc()
        log.warning("event_ignored", reason=refusal.value, detail=why, message_id=message_id)

    async def _pause(self, seconds: float) -> None:
        await sleep_until_set(self.rt.clock, seconds, self.rt.stopping)


def _is_aws_error(error: Exception) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(error, BotoCoreError | ClientError | OSError)

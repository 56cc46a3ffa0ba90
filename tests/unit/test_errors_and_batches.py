"""AWS errors sorted for the tracker, and failures inside the ingest's reader and writer tasks
reaching the caller as themselves, not wrapped in an ExceptionGroup."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from structlog.testing import capture_logs

from batch_poller.aws.errors import RetryPolicy, classify
from batch_poller.config import ResultsSettings
from batch_poller.store import RecordRow, WriteReport
from batch_poller.writing import IngestContext, Interrupted, one_by_one, write_batches


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetModelInvocationJob")


@pytest.mark.parametrize(
    ("error", "transient", "fatal"),
    [
        (_client_error("ThrottlingException"), True, False),
        (_client_error("ServiceUnavailableException"), True, False),
        (_client_error("ResourceNotFoundException"), False, True),
        (_client_error("AccessDeniedException"), False, True),
        (_client_error("ValidationException"), False, True),
        (_client_error("ExpiredTokenException"), False, False),
        (HTTPClientError(error="reset"), True, False),
        (NoCredentialsError(), False, False),
    ],
)
def test_only_not_found_denied_and_invalid_are_fatal_for_a_job(
    error: Exception, transient: bool, fatal: bool
) -> None:
    sorted_error = classify("GetModelInvocationJob", error)

    assert (sorted_error.transient, sorted_error.fatal_for_job) == (transient, fatal)


class RecordingStore:
    def __init__(self, fail_on_write: Exception | None = None) -> None:
        self.batches: list[list[RecordRow]] = []
        self.fail_on_write = fail_on_write

    async def write_records(self, arn: str, rows: list[RecordRow], now: Any) -> WriteReport:
        if self.fail_on_write is not None:
            raise self.fail_on_write
        self.batches.append(rows)
        return WriteReport(len(rows), [])


def _context(store: RecordingStore, stopping: asyncio.Event | None = None) -> IngestContext:
    class Clock:
        def now(self) -> datetime:
            return datetime(2026, 1, 1, tzinfo=UTC)

        async def sleep(self, seconds: float) -> None:
            return None

    return IngestContext(
        s3=None,  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
        clock=Clock(),
        settings=ResultsSettings(batch_size=2),
        stopping=stopping or asyncio.Event(),
        cost_of=None,
    )


class _Job:
    batch_job_arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefabcdef"


async def _rows(count: int, fail_after: int | None = None) -> AsyncIterator[RecordRow]:
    for n in range(count):
        if fail_after is not None and n == fail_after:
            raise ValueError("the reader broke")
        yield RecordRow(record_id=f"r{n}", outcome="ok")


async def test_rows_are_written_in_batches() -> None:
    store = RecordingStore()

    await write_batches(_Job(), one_by_one(_rows(5)), _context(store))  # type: ignore[arg-type]

    assert [len(b) for b in store.batches] == [2, 2, 1]


async def test_pieces_are_regrouped_into_batches_of_the_configured_count() -> None:
    store = RecordingStore()

    async def pieces() -> AsyncIterator[list[RecordRow]]:
        for numbers in (range(7), range(7, 9)):  # a piece of 7 rows, then one of 2
            yield [RecordRow(record_id=f"r{n}", outcome="ok") for n in numbers]

    await write_batches(_Job(), pieces(), _context(store))  # type: ignore[arg-type]

    assert [len(b) for b in store.batches] == [2, 2, 2, 2, 1]
    assert [row.record_id for b in store.batches for row in b] == [f"r{n}" for n in range(9)]


async def test_large_rows_are_cut_by_size_at_the_end_of_a_piece() -> None:
    store = RecordingStore()
    context = dataclasses.replace(_context(store), settings=ResultsSettings(batch_size=1000))
    big = "x" * (3 * 1024 * 1024)

    async def pieces() -> AsyncIterator[list[RecordRow]]:
        for n in range(4):  # 3 MB each: the third piece takes a batch over 8 MB
            yield [RecordRow(record_id=f"r{n}", outcome="ok", model_output=big)]

    await write_batches(_Job(), pieces(), context)  # type: ignore[arg-type]

    assert [len(b) for b in store.batches] == [3, 1]


async def test_a_reader_failure_arrives_as_itself() -> None:
    with pytest.raises(ValueError, match="the reader broke"):
        await write_batches(_Job(), one_by_one(_rows(5, fail_after=3)), _context(RecordingStore()))  # type: ignore[arg-type]


async def test_a_writer_failure_arrives_as_itself() -> None:
    store = RecordingStore(fail_on_write=OSError("disk full"))

    with pytest.raises(OSError, match="disk full"):
        await write_batches(_Job(), one_by_one(_rows(5)), _context(store))  # type: ignore[arg-type]


async def test_a_stop_ends_the_ingest_after_a_committed_batch() -> None:
    stopping = asyncio.Event()
    stopping.set()
    store = RecordingStore()

    with pytest.raises(Interrupted):
        await write_batches(_Job(), one_by_one(_rows(10)), _context(store, stopping))  # type: ignore[arg-type]

    assert len(store.batches) == 1


async def test_every_retry_is_logged_with_its_error_and_wait() -> None:
    answers: list[Any] = [_client_error("ThrottlingException") for _ in range(2)]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def call() -> str:
        if answers:
            raise answers.pop(0)
        return "answered"

    policy = RetryPolicy(sleep=sleep)
    with capture_logs() as logs:
        assert await policy.run("GetModelInvocationJob", call) == "answered"

    retried = [entry for entry in logs if entry["event"] == "aws_call_retried"]
    assert [entry["attempt"] for entry in retried] == [1, 2]
    assert all("ThrottlingException" in entry["error"] for entry in retried)
    assert [entry["retry_in_seconds"] for entry in retried] == [round(w, 1) for w in waits]

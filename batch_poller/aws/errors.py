"""AWS failures sorted into transient (retry) and permanent (give up), with tenacity retries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import structlog
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

T = TypeVar("T")
log = structlog.get_logger("batch_poller")

TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalServerException",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "SlowDown",
        "500",
        "502",
        "503",
        "504",
    }
)
JOB_FATAL_CODES = frozenset(
    {"ResourceNotFoundException", "AccessDeniedException", "ValidationException"}
)
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "SlowDown"}
)
_NETWORK_ERRORS = (
    EndpointConnectionError,
    HTTPClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ResponseStreamingError,
    # A body that ended before its Content-Length: the connection was cut.
    IncompleteReadError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)


class AwsError(Exception):
    """A failed AWS call: which operation, the error code, and whether retrying can help."""

    def __init__(self, operation: str, code: str, message: str, *, transient: bool) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.transient = transient

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLING_CODES

    @property
    def outcome(self) -> str:
        """throttled, transient or permanent: how the metrics count it."""
        if self.throttled:
            return "throttled"
        return "transient" if self.transient else "permanent"

    @property
    def fatal_for_job(self) -> bool:
        """Bedrock says this job cannot be described at all: it does not exist, or is not ours."""
        return self.code in JOB_FATAL_CODES

    @property
    def not_found(self) -> bool:
        return self.code in ("ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "404")


def classify(operation: str, error: BaseException) -> AwsError:
    if isinstance(error, AwsError):
        return error
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(
            details.get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        )
        message = str(details.get("Message") or "")
        return AwsError(operation, code, message, transient=code in TRANSIENT_CODES)
    if isinstance(error, _NETWORK_ERRORS):
        return AwsError(operation, type(error).__name__, str(error), transient=True)
    if isinstance(error, BotoCoreError):
        return AwsError(operation, type(error).__name__, str(error), transient=False)
    raise error


Observer = Callable[[str, str], None]


def _ignore(operation: str, outcome: str) -> None:
    return None


async def call(
    operation: str, make_call: Callable[[], Awaitable[T]], observe: Observer = _ignore
) -> T:
    """Run one AWS call, turning its failure into an AwsError; tells `observe` the outcome."""
    try:
        result = await make_call()
    except (ClientError, BotoCoreError, *_NETWORK_ERRORS) as error:
        failure = classify(operation, error)
        observe(operation, failure.outcome)
        raise failure from error
    observe(operation, "ok")
    return result


def _log_retry(operation: str, state: RetryCallState) -> None:
    """Each retry is said: a call that waits on an endpoint that does not answer is never a
    silent wait."""
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else None
    log.info(
        "aws_call_retried",
        operation=operation,
        attempt=state.attempt_number,
        error=str(error),
        retry_in_seconds=None if wait is None else round(wait, 1),
    )


class RetryPolicy:
    """Exponential backoff with jitter for transient errors; `sleep` comes from the clock."""

    def __init__(
        self,
        attempts: int = 5,
        initial_seconds: float = 0.5,
        max_seconds: float = 20.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observe: Observer = _ignore,
        before_call: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.attempts = attempts
        self.initial_seconds = initial_seconds
        self.max_seconds = max_seconds
        self.sleep = sleep
        self.observe = observe
        # Waits for the rate limiter's permission before every attempt.
        self.before_call = before_call

    async def run(self, operation: str, make_call: Callable[[], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, AwsError) and e.transient),
            wait=wait_exponential_jitter(
                multiplier=self.initial_seconds, max=self.max_seconds, jitter=self.initial_seconds
            ),
            stop=stop_after_attempt(self.attempts),
            sleep=self.sleep,
            before_sleep=lambda state: _log_retry(operation, state),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if self.before_call is not None:
                    await self.before_call(operation)
                return await call(operation, make_call, self.observe)
        raise AssertionError("unreachable: tenacity reraises the last error")

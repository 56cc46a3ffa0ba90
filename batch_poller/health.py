"""Whether the daemon's passes succeed: the state behind /healthz, the status document and the
watchdog, and a log of pass failures that says a repeated error once with a count instead of
once a pass."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError

from batch_poller.aws.errors import AwsError
from batch_poller.store.errors import StoreError, describe_database_error
from batch_poller.store.guards import LeaseLost

log = structlog.get_logger("batch_poller.health")

# A failure that goes on is summed up in the log at most this often.
REPEAT_SUMMARY_EVERY = timedelta(seconds=60)


def describe_pass_error(error: BaseException) -> str:
    """One line for the log, the API and the status: never SQL parameters or a traceback."""
    if isinstance(error, StoreError | AwsError):
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, SQLAlchemyError):
        return describe_database_error("a pass", error)
    first = str(error).strip().splitlines()
    return f"{type(error).__name__}: {first[0]}" if first else type(error).__name__


def is_expected_failure(error: BaseException) -> bool:
    """The database or AWS failed: worth a line, not a traceback. Anything else is a bug."""
    return isinstance(
        error,
        StoreError | AwsError | SQLAlchemyError | OSError | TimeoutError | LeaseLost,
    )


class PassHealth:
    """Consecutive failed passes since the last one that succeeded, and what the last failure
    was. The daemon is unhealthy while passes fail, and wedged once they have failed for longer
    than `[poller] unhealthy_after_seconds`: then the watchdog goes unfed and systemd restarts it.
    """

    def __init__(self) -> None:
        self.failed_passes = 0
        self.failing_since: datetime | None = None
        self.last_error: str | None = None
        self._logged_error: str | None = None
        self._repeats_unlogged = 0
        self._summarised_at: datetime | None = None
        self._recovery_logged_at: datetime | None = None

    @property
    def failing(self) -> bool:
        return self.failed_passes > 0

    def failing_for(self, now: datetime) -> timedelta:
        return now - self.failing_since if self.failing_since is not None else timedelta(0)

    def wedged(self, now: datetime, bound_seconds: float) -> bool:
        return self.failing and self.failing_for(now) >= timedelta(seconds=bound_seconds)

    def pass_succeeded(self, now: datetime) -> None:
        if self.failing and self._quiet_since(self._recovery_logged_at, now):
            # Passes that fail and succeed by turns (a pool with a few bad connections) would
            # otherwise log both lines every pass.
            self._recovery_logged_at = now
            self._flush_repeats()
            log.info(
                "passes_recovered",
                failed_passes=self.failed_passes,
                seconds=round(self.failing_for(now).total_seconds(), 1),
            )
        self.failed_passes = 0
        self.failing_since = None
        self.last_error = None

    def pass_failed(self, error: BaseException, now: datetime) -> None:
        description = describe_pass_error(error)
        self.failed_passes += 1
        if self.failing_since is None:
            self.failing_since = now
        self.last_error = description
        if description != self._logged_error:
            self._flush_repeats()
            self._logged_error = description
            self._summarised_at = now
            if is_expected_failure(error):
                log.error("pass_failed", error=description, failed_passes=self.failed_passes)
            else:  # a bug: its traceback is worth having, once
                log.error(
                    "pass_failed",
                    error=description,
                    failed_passes=self.failed_passes,
                    exc_info=error,
                )
            return
        self._repeats_unlogged += 1
        if self._quiet_since(self._summarised_at, now):
            self._summarised_at = now
            self._flush_repeats()

    @staticmethod
    def _quiet_since(logged_at: datetime | None, now: datetime) -> bool:
        return logged_at is None or now - logged_at >= REPEAT_SUMMARY_EVERY

    def _flush_repeats(self) -> None:
        if self._repeats_unlogged:
            log.error(
                "pass_failed",
                error=self._logged_error,
                repeated=self._repeats_unlogged,
                failed_passes=self.failed_passes,
                detail=f"repeated {self._repeats_unlogged} times",
            )
            self._repeats_unlogged = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "health": "failing" if self.failing else "ok",
            "failed_passes": self.failed_passes,
            "failing_since": None if self.failing_since is None else self.failing_since.isoformat(),
            "last_error": self.last_error,
        }

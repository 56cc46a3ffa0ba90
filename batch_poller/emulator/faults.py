"""Decides whether one Bedrock call fails, as configured in `Faults`."""

from __future__ import annotations

import random

from batch_poller.emulator.protocol import ApiError
from batch_poller.emulator.settings import Faults


class FaultInjector:
    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def reseed(self, seed: int) -> None:
        self._random = random.Random(seed)

    def error_for(self, faults: Faults, call_number: int) -> ApiError | None:
        """The error this call gets, if any. call_number counts from when `faults` were set."""
        if faults.permanent_error and call_number >= faults.permanent_from_call:
            return ApiError(faults.permanent_error, _PERMANENT_MESSAGES[faults.permanent_error])
        if faults.throttle_rate and self._random.random() < faults.throttle_rate:
            return ApiError(
                "ThrottlingException", "Too many requests, please wait before trying again."
            )
        if faults.server_error_rate and self._random.random() < faults.server_error_rate:
            if self._random.random() < 0.5:
                return ApiError("ServiceUnavailableException", "Service temporarily unavailable.")
            return ApiError("InternalServerException", "An internal server error occurred.")
        return None


_PERMANENT_MESSAGES = {
    "AccessDeniedException": "User is not authorized to perform this action on this resource.",
    "ResourceNotFoundException": "The specified model invocation job was not found.",
    "ServiceQuotaExceededException": "The number of jobs of this model submitted or in progress"
    " is at the account's quota.",
}

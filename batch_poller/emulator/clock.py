"""The emulator's clock: real time, or frozen and moved on by hand so tests never wait."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class EmulatorClock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._frozen_at: float | None = None

    def now(self) -> float:
        base = self._frozen_at if self._frozen_at is not None else time.time()
        return base + self._offset

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def freeze(self) -> None:
        if self._frozen_at is None:
            self._frozen_at = time.time()

    def unfreeze(self) -> None:
        if self._frozen_at is not None:
            self._offset += self._frozen_at - time.time()
            self._frozen_at = None

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    def reset(self) -> None:
        self._offset = 0.0
        self._frozen_at = None

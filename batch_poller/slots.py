"""How many jobs this process works on at once, shared by overlapping passes. The limit is read
live, so a reload that changes it applies to the next claim."""

from __future__ import annotations

from collections.abc import Callable


class Slots:
    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._busy = 0

    def take_free(self) -> int:
        """Takes every free slot at once; the caller gives back what it does not use."""
        free = max(0, self._limit() - self._busy)
        self._busy += free
        return free

    def give_back(self, count: int) -> None:
        self._busy -= count

    def half(self) -> int:
        return max(1, self._limit() // 2)

"""memory.py: free heap handed back once start-up is over, where the C library can."""

from __future__ import annotations

import ctypes
import gc
import sys

import pytest

from batch_poller.memory import return_free_memory


def test_free_memory_is_returned_on_linux() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("malloc_trim is glibc's")
    return_free_memory()  # glibc: malloc_trim(0); musl, which has none: nothing


def test_another_platform_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(gc, "collect", lambda: pytest.fail("nothing to do here"))
    monkeypatch.setattr(ctypes, "CDLL", lambda _: pytest.fail("nothing to do here"))

    return_free_memory()

"""The daemon's memory after start-up."""

from __future__ import annotations

import gc
import sys


def return_free_memory() -> None:
    """Hands the C heap's free pages back to the system, once start-up is over.

    Start-up frees a good deal: the service models' files once read, import-time objects, the
    first pass's buffers. glibc keeps freed memory for the process to reuse and returns only
    what lies at the very top of its heap, so without this the idle daemon goes on holding
    2 to 3 MB it no longer uses. malloc_trim is glibc's own; elsewhere (musl, macOS) this does
    nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # a C library without malloc_trim
        return
    trim(0)

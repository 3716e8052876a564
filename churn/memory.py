"""How the service's processes keep memory they free: for reuse, not handed back at once.

glibc's malloc serves an allocation above its mmap threshold (128 KiB at first, rising with
what was freed) with fresh pages from the kernel, and gives freed memory at the top of a heap
back above its trim threshold. numpy's temporaries for a 1,000-customer batch, or for the few
thousand customers the drift and shadow flush handles at a time (churn/watch.py), are a few
hundred KiB each: every one cost a page fault per 4 KiB. Inside a loaded server that made the
shadow's flush three times slower than in a loop that reused the same memory (issue 16: ~29
against ~10 µs per 100-customer request). With the thresholds raised, freed memory is reused
instead; a worker keeps at most what it used at its busiest.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt's parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# The largest allocation served from the heap, and the freed memory a heap keeps at its top.
MMAP_THRESHOLD_BYTES = 4 << 20
TRIM_THRESHOLD_BYTES = 32 << 20


def keep_freed_memory() -> bool:
    """Raise glibc malloc's thresholds for this process and the workers it forks; False where
    the C library has no such settings (musl, macOS), which then keeps its own ways."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mmap_set = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    trim_set = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    return bool(mmap_set and trim_set)

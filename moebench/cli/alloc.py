"""The C allocator tuned for the plan search: large arrays kept in the heap between searches.

A search allocates and frees many arrays of a few to tens of MB. glibc serves those with
mmap and hands them back to the kernel on free, so every temporary array is page-faulted in
anew: on a 1,024-point sweep that was a fifth of the CPU time, in the kernel. Raising the mmap
threshold to glibc's maximum (32 MiB on 64-bit) and the trim threshold keeps freed memory for
the next array; the numbers computed do not change. The command line sets this for its own
process (and the sweep's forked workers); the library leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters (glibc malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc: 4 * 1024 * 1024 * sizeof(long)
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 64 << 20


def keep_freed_memory() -> bool:
    """Apply the settings where the C library is glibc; whether they were applied."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD)))

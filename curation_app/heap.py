"""Keep freed memory for reuse in `hitl replay` (glibc only; elsewhere a no-op).

glibc hands every allocation above its mmap threshold (at most 32 MB) its own fresh pages and
returns them to the kernel on free. A 10M-row replay allocates many 80-160 MB column
temporaries, so each one page-faults anew: about half of that run's CPU time was system time
from those faults. With mmap off and trimming deferred, freed blocks stay in the heap and the
next temporary of the same size reuses them (10M rows: 10.5 -> 4.7-7.4 s of system time,
the same peak RSS). The numbers computed do not change.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_MAX = -4
LARGEST_INT = 2**31 - 1


def keep_freed_memory() -> bool:
    """Ask glibc to serve large blocks from its heap and keep freed ones; False if it cannot."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): keep the default behaviour
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, LARGEST_INT))

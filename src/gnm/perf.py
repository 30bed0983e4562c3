"""Process-wide CPU settings that make training and sampling faster.

:func:`reuse_freed_memory` stops glibc's ``malloc`` from handing large freed blocks back to the
operating system. By default every allocation above the mmap threshold (at most 32 MiB, and
128 KiB until the first such block is freed) gets fresh pages from the kernel, and each page is
zero-filled on first touch: a minor page fault per 4 KiB. A GNM step allocates many such
temporaries (a glimpse batch ``[B·K, C, 32, 32]`` at batch 32 is 32 MiB in fp32), so at the
paper's MNIST-4 configuration one fp32 train step took about 20,000-26,000 page faults and
0.055-0.08 s of kernel time per 0.6-0.7 s of CPU time; after :func:`reuse_freed_memory`, about
700-2,600 faults and 0.006-0.009 s (one thread, batch 32; ``benchmarks/train_throughput.py``
measures both). The price: the process keeps its peak heap instead of shrinking after it.

The ``gnm`` command calls it at start-up unless ``GNM_MALLOC=default`` is set; library users
call it themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameters of glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


def reuse_freed_memory() -> bool:
    """Make glibc ``malloc`` keep freed memory for reuse: no ``mmap`` for large blocks
    (``M_MMAP_MAX`` 0, so they come from the heap) and no heap trimming below 2 GiB of free
    top (``M_TRIM_THRESHOLD``). Returns True when applied; False (and changes nothing) off
    Linux/glibc or when ``GNM_MALLOC=default`` is set in the environment."""
    if os.environ.get("GNM_MALLOC", "").strip().lower() == "default":
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl has mallopt as a stub)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))

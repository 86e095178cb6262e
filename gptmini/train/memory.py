"""Freed memory stays with the process, so a CPU step reuses its pages instead of faulting in fresh ones.

glibc's malloc hands every allocation above its mmap threshold (32 MB at most) to ``mmap`` and unmaps it
again when it is freed. A training step on a CPU allocates the same big tensors every time (the logits'
gradient, the weights' bf16 copies under autocast, the gradients themselves), so each step gets fresh pages
from the kernel: one page fault per 4 KB, each page zeroed first. At the book's shapes that was 100,000 to
500,000 faults per step and 10-15 % of its time (bench/README.md, issue 30). With ``M_MMAP_MAX = 0`` malloc
serves every allocation from its heap and, with a high ``M_TRIM_THRESHOLD``, keeps what is freed there for
the next step: the same pages are reused, as PyTorch's caching allocator does on a GPU. The cost is the
same as there: the process keeps its peak memory until it exits.

Only for batches of one shape (pre-training windows; a classifier padded to one width): the engine asks its batch
source (``same_shape``). With a new shape every step (instruction batches, each as long as its longest example)
a freed block rarely fits the next request (PyTorch asks for 64-byte aligned memory, which glibc serves from a
block somewhat larger than the size), so the heap grows instead: measured at chapter 7's shapes, 2.5 GB to
6.5 GB of resident memory over 80 steps and still growing, against 3.0 GB steady with malloc's own settings.

Only glibc (Linux) has these settings; elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import platform
import threading

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30  # free memory above the heap's top beyond this (1 GiB) still goes back to the system

_lock = threading.Lock()
_kept = False


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse (once per process). Returns whether it does."""
    global _kept
    with _lock:
        if not _kept and platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            libc = ctypes.CDLL(None)
            _kept = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        return _kept

"""Per-thread OpenMP limit for inference that runs beside training.

torch's CPU parallelism (OpenMP) is process-wide, except for one setting: the number of threads a
*thread* asks for in its own parallel regions (``omp_set_num_threads`` affects only the calling
thread). A UI or notebook thread that samples from a snapshot while another thread trains should run
its small forward passes on that one thread: when it opens parallel regions of its own, OpenMP keeps
a second team of workers alive for it, and on a machine with as many cores as torch threads the
training thread's workers then stop spin-waiting (libgomp throttles them when it manages more threads
than there are CPUs) -- measured: a small model trained ~10 % slower for the rest of the run after the
console's first next-token panel refresh (bench/README_tui.md).
"""

from __future__ import annotations

import ctypes
import glob
import os
from functools import lru_cache


@lru_cache(maxsize=1)
def _omp_set_num_threads():
    import torch

    lib_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
    patterns = ("libgomp*.so*", "libiomp5*.so*", "libomp*.so*", "libomp*.dylib", "libiomp5*.dylib")
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(lib_dir, pattern))):
            try:
                return ctypes.CDLL(path).omp_set_num_threads
            except (OSError, AttributeError):
                continue
    return None  # an OpenMP runtime from elsewhere may not be the one torch uses: change nothing


def limit_this_thread(n: int = 1) -> bool:
    """Let torch ops called from *this* thread use at most ``n`` intra-op threads.

    Other threads (training) keep theirs. Returns False where the OpenMP runtime cannot be found
    (then nothing changes).
    """
    fn = _omp_set_num_threads()
    if fn is None:
        return False
    fn(int(n))
    return True

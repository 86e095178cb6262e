"""Host staging buffers for checkpoint saves.

A save copies the model and optimizer tensors to host memory on the training
thread, then a writer thread puts them on disk. Copying into freshly allocated
memory costs page faults (for a 124M model, ~1.4 GB of them: about three times
the copy itself), so the copies go into buffer sets that are kept and reused
once the writer is done with them. A set can be allocated and touched ahead of
time on another thread (``prefault``), so even the first save finds warm memory.

On CUDA the buffers are pinned, and the copies run asynchronously followed by
one synchronisation.
"""

from __future__ import annotations

import threading
import time

import torch

Tensors = dict[str, torch.Tensor]
Spec = tuple[tuple[str, tuple[int, ...], torch.dtype], ...]


def spec_of(tensors: Tensors) -> Spec:
    return tuple((k, tuple(v.shape), v.dtype) for k, v in tensors.items())


class StagingPool:
    """At most ``keep`` host buffer sets alive at once; hands out one per save.

    With ``keep=2`` one set can be written while the next save copies into the
    other. When the writer falls further behind (saves every step of a big
    model), a save waits for a set to come back instead of piling up copies in
    memory: host memory stays bounded at ``keep`` copies of the state.
    """

    def __init__(self, *, pin: bool = False, keep: int = 2, wait_timeout: float = 600.0) -> None:
        self.pin = pin
        self.keep = keep
        self.wait_timeout = wait_timeout
        self._free: list[tuple[Spec, Tensors]] = []
        self._alive = 0  # sets allocated and not dropped (free or held by a writer)
        self._cond = threading.Condition()
        self.allocations = 0  # buffer sets allocated so far (a benchmark / test can check reuse)

    def _allocate(self, spec: Spec) -> Tensors:
        return {k: torch.empty(shape, dtype=dtype, pin_memory=self.pin) for k, shape, dtype in spec}

    def _acquire(self, spec: Spec, *, wait: bool) -> Tensors | None:
        """A free set of this shape, or a new one while fewer than ``keep`` are alive, else wait (or None)."""
        with self._cond:
            deadline = None
            while True:
                for i, (s, bufs) in enumerate(self._free):
                    if s == spec:
                        del self._free[i]
                        return bufs
                if self._free:  # free sets of another shape are useless now
                    self._alive -= len(self._free)
                    self._free.clear()
                if self._alive < self.keep:
                    self._alive += 1
                    self.allocations += 1
                    break
                if not wait:
                    return None
                if deadline is None:
                    deadline = time.monotonic() + self.wait_timeout
                left = deadline - time.monotonic()
                if left <= 0:  # a writer never gave its set back: do not hang the training loop
                    self._alive += 1
                    self.allocations += 1
                    break
                self._cond.wait(left)
        return self._allocate(spec)

    def copy(self, sources: Tensors) -> Tensors:
        """Host copies of ``sources`` in buffers from the pool."""
        bufs = self._acquire(spec_of(sources), wait=True)
        for k, v in sources.items():
            bufs[k].copy_(v.detach(), non_blocking=self.pin)
        if self.pin and torch.cuda.is_available():
            torch.cuda.synchronize()
        return bufs

    def release(self, bufs: Tensors) -> None:
        """Give a set back once nothing reads it any more (the writer has saved it)."""
        with self._cond:
            self._free.append((spec_of(bufs), bufs))
            self._cond.notify_all()

    def prefault(self, spec: Spec) -> None:
        """Allocate a set and touch every page now, so a later save copies into mapped memory."""
        bufs = self._acquire(spec, wait=False)
        if bufs is None:
            return
        for v in bufs.values():
            v.zero_()
        self.release(bufs)

    def clear(self) -> None:
        """Drop the free sets (the run is over); sets still held are dropped when given back."""
        with self._cond:
            self._alive -= len(self._free)
            self._free.clear()

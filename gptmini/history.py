"""Compact, thread-safe store of the whole loss history.

The bridge appends to it from the training thread (one append per optimizer
step, a few microseconds); the loss plot reads a downsampled view of it on a
UI timer. Typed ``array`` buffers keep a million steps in a few megabytes.
"""

from __future__ import annotations

import threading
from array import array
from dataclasses import dataclass
from typing import Literal

import numpy as np

Axis = Literal["steps", "tokens", "epochs"]
AXES: tuple[Axis, ...] = ("steps", "tokens", "epochs")


@dataclass
class PlotView:
    """Downsampled series ready for plotting (plain lists of floats)."""

    axis: Axis
    n_points: int  # points in the full history (before downsampling)
    raw_x: list[float]
    raw_y: list[float]
    smooth_x: list[float]
    smooth_y: list[float]
    val_x: list[float]
    val_y: list[float]


class LossHistory:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change; the plot redraws when it moves
        self._clear_unlocked()

    def _clear_unlocked(self) -> None:
        self.step = array("q")
        self.tokens = array("d")
        self.epoch = array("f")  # fractional epoch: epoch - 1 + batch / batches_per_epoch
        self.loss = array("f")
        self.smooth = array("f")
        self.val_step = array("q")
        self.val_tokens = array("d")
        self.val_epoch = array("f")
        self.val_loss = array("f")

    # ------------------------------------------------------------ writers
    def clear(self) -> None:
        with self._lock:
            self._clear_unlocked()
            self.version += 1

    def add_step(self, step: int, tokens: int, epoch: float, loss: float, smooth: float) -> None:
        with self._lock:
            if self.step and step <= self.step[-1]:
                # A step we already have (resume / restore): drop the stale tail first.
                self._truncate_unlocked(step - 1)
            self.step.append(step)
            self.tokens.append(float(tokens))
            self.epoch.append(epoch)
            self.loss.append(loss)
            self.smooth.append(smooth)
            self.version += 1

    def add_eval(self, step: int, tokens: int, epoch: float, val_loss: float) -> None:
        with self._lock:
            if self.val_step and step <= self.val_step[-1]:
                self._truncate_val_unlocked(step - 1)
            self.val_step.append(step)
            self.val_tokens.append(float(tokens))
            self.val_epoch.append(epoch)
            self.val_loss.append(val_loss)
            self.version += 1

    def truncate_after(self, step: int) -> None:
        """Forget every point after ``step`` (a restored checkpoint rewinds the run)."""
        with self._lock:
            self._truncate_unlocked(step)
            self.version += 1

    def _truncate_unlocked(self, step: int) -> None:
        n = _count_le(self.step, step)
        for buf in (self.step, self.tokens, self.epoch, self.loss, self.smooth):
            del buf[n:]
        self._truncate_val_unlocked(step)

    def _truncate_val_unlocked(self, step: int) -> None:
        n = _count_le(self.val_step, step)
        for buf in (self.val_step, self.val_tokens, self.val_epoch, self.val_loss):
            del buf[n:]

    # ------------------------------------------------------------ readers
    def __len__(self) -> int:
        return len(self.step)

    @property
    def last_step(self) -> int | None:
        with self._lock:
            return self.step[-1] if self.step else None

    def view(self, axis: Axis, buckets: int) -> PlotView:
        """A downsampled copy: ``buckets`` min/max pairs for the raw loss, means for the smoothed loss."""
        with self._lock:
            x_src = {"steps": self.step, "tokens": self.tokens, "epochs": self.epoch}[axis]
            vx_src = {"steps": self.val_step, "tokens": self.val_tokens, "epochs": self.val_epoch}[axis]
            x = np.array(x_src, dtype=np.float64)
            raw = np.frombuffer(self.loss, dtype=np.float32).astype(np.float64) if self.loss else np.zeros(0)
            smooth = np.frombuffer(self.smooth, dtype=np.float32).astype(np.float64) if self.smooth else np.zeros(0)
            vx = np.array(vx_src, dtype=np.float64)
            vy = np.array(self.val_loss, dtype=np.float64)
        n = len(x)
        rx, ry, sx, sy = downsample(x, raw, smooth, max(1, buckets))
        keep = np.isfinite(vy)
        return PlotView(axis, n, rx, ry, sx, sy, vx[keep].tolist(), vy[keep].tolist())


def _count_le(buf: array, step: int) -> int:
    """How many leading entries of the ascending ``buf`` are <= step."""
    if not buf:
        return 0
    return int(np.searchsorted(np.frombuffer(buf, dtype=np.int64), step, side="right"))


def downsample(
    x: np.ndarray, raw: np.ndarray, smooth: np.ndarray, buckets: int
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Min/max bucketing for the noisy raw loss (keeps spikes), mean bucketing for the smoothed one.

    Non-finite losses (a NaN step) are left out of the buckets.
    """
    n = len(x)
    if n == 0:
        return [], [], [], []
    finite = np.isfinite(raw)
    sfinite = np.isfinite(smooth)
    if n <= buckets:
        return (x[finite].tolist(), raw[finite].tolist(), x[sfinite].tolist(), smooth[sfinite].tolist())
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    starts = edges[:-1]
    starts = starts[np.concatenate(([True], np.diff(starts) > 0))]
    counts = np.diff(np.append(starts, n))
    mid_x = x[starts + counts // 2]
    r = np.where(finite, raw, np.nan)
    with np.errstate(all="ignore"):
        rmin = np.fmin.reduceat(r, starts)
        rmax = np.fmax.reduceat(r, starts)
        s = np.where(sfinite, smooth, 0.0)
        ssum = np.add.reduceat(s, starts)
        scount = np.add.reduceat(sfinite.astype(np.int64), starts)
        smean = ssum / np.maximum(scount, 1)
    ok = np.isfinite(rmin) & np.isfinite(rmax)
    # interleave min and max at the bucket's x so the faint raw trace shows the noise band
    rx = np.repeat(mid_x[ok], 2)
    ry = np.empty(2 * int(ok.sum()))
    ry[0::2] = rmin[ok]
    ry[1::2] = rmax[ok]
    sok = scount > 0
    return rx.tolist(), ry.tolist(), mid_x[sok].tolist(), smean[sok].tolist()

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


class Series:
    """One curve: each point's step, tokens seen and fractional epoch, and its values, in typed arrays."""

    def __init__(self, *values: str) -> None:
        self.step = array("q")
        self.tokens = array("d")
        self.epoch = array("f")  # fractional epoch: epochs done, with the current one's share
        self.values = {name: array("f") for name in values}
        self._value_columns = tuple(self.values.values())

    def __len__(self) -> int:
        return len(self.step)

    def _columns(self) -> tuple[array, ...]:
        return (self.step, self.tokens, self.epoch, *self._value_columns)

    def append(self, step: int, tokens: int, epoch: float, *values: float) -> None:
        if self.step and step <= self.step[-1]:
            self.truncate_after(step - 1)  # a step we already have (resume / restore): drop the stale tail
        self.step.append(step)
        self.tokens.append(float(tokens))
        self.epoch.append(epoch)
        for column, value in zip(self._value_columns, values):
            column.append(value)

    def truncate_after(self, step: int) -> None:
        n = _count_le(self.step, step)
        for column in self._columns():
            del column[n:]

    def clear(self) -> None:
        self.truncate_after(-1)

    def x(self, axis: Axis) -> np.ndarray:
        return np.array({"steps": self.step, "tokens": self.tokens, "epochs": self.epoch}[axis], dtype=np.float64)

    def y(self, name: str) -> np.ndarray:
        column = self.values[name]
        return np.frombuffer(column, dtype=np.float32).astype(np.float64) if column else np.zeros(0)


class LossHistory:
    """The training loss (raw and smoothed) of every step, and the validation loss of every evaluation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change; the plot redraws when it moves
        self.train = Series("loss", "smooth")
        self.val = Series("loss")

    # ------------------------------------------------------------ writers
    def clear(self) -> None:
        with self._lock:
            self.train.clear()
            self.val.clear()
            self.version += 1

    def add_step(self, step: int, tokens: int, epoch: float, loss: float, smooth: float) -> None:
        with self._lock:
            if self.train.step and step <= self.train.step[-1]:
                self.val.truncate_after(step - 1)  # the run went back (resume / restore): so did its evals
            self.train.append(step, tokens, epoch, loss, smooth)
            self.version += 1

    def add_eval(self, step: int, tokens: int, epoch: float, val_loss: float) -> None:
        with self._lock:
            self.val.append(step, tokens, epoch, val_loss)
            self.version += 1

    def truncate_after(self, step: int) -> None:
        """Forget every point after ``step`` (a restored checkpoint rewinds the run)."""
        with self._lock:
            self.train.truncate_after(step)
            self.val.truncate_after(step)
            self.version += 1

    # ------------------------------------------------------------ readers
    def __len__(self) -> int:
        return len(self.train)

    @property
    def last_step(self) -> int | None:
        with self._lock:
            return self.train.step[-1] if self.train.step else None

    def view(self, axis: Axis, buckets: int) -> PlotView:
        """A downsampled copy: ``buckets`` min/max pairs for the raw loss, means for the smoothed loss."""
        with self._lock:
            x, raw, smooth = self.train.x(axis), self.train.y("loss"), self.train.y("smooth")
            vx, vy = self.val.x(axis), self.val.y("loss")
        rx, ry, sx, sy = downsample(x, raw, smooth, max(1, buckets))
        keep = np.isfinite(vy)
        return PlotView(axis, len(x), rx, ry, sx, sy, vx[keep].tolist(), vy[keep].tolist())


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

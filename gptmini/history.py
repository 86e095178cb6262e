"""Compact, thread-safe store of the whole loss history.

The session appends to it from the training thread (one append per optimizer
step, about a microsecond); the loss plot reads a downsampled view of it on a
UI timer. Typed ``array`` buffers keep a million steps in a few megabytes.
A view can smooth the raw loss over a window of steps, keep only the last N
steps (zoom), and put steps, tokens, epochs or wall time on the x axis.
"""

from __future__ import annotations

import threading
from array import array
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Axis = Literal["steps", "tokens", "epochs", "time"]
AXES: tuple[Axis, ...] = ("steps", "tokens", "epochs", "time")


@dataclass(frozen=True)
class ViewOptions:
    """How to look at a history: the x axis, how many buckets, the smoothing and the zoom."""

    axis: Axis = "steps"
    buckets: int = 100
    smooth: int = 0  # 0: the engine's running average (EMA 0.9); N: mean of the last N raw losses
    after_step: int | None = None  # zoom: only the points after this step; None: the whole run


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
    metrics: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)  # name -> (x, y) per eval


class Series:
    """One curve: each point's step, tokens seen and fractional epoch, and its values, in typed arrays."""

    def __init__(self, *values: str) -> None:
        self.step = array("q")
        self.tokens = array("d")
        self.epoch = array("f")  # fractional epoch: epochs done, with the current one's share
        self.time = array("d")  # wall clock (time.time()) of the point
        self.values = {name: array("f") for name in values}
        self._value_columns = tuple(self.values.values())

    def __len__(self) -> int:
        return len(self.step)

    def _columns(self) -> tuple[array, ...]:
        return (self.step, self.tokens, self.epoch, self.time, *self._value_columns)

    def append(self, step: int, tokens: int, epoch: float, time: float, *values: float) -> None:
        if self.step and step <= self.step[-1]:
            self.truncate_after(step - 1)  # a step we already have (resume / restore): drop the stale tail
        self.step.append(step)
        self.tokens.append(float(tokens))
        self.epoch.append(epoch)
        self.time.append(time)
        for column, value in zip(self._value_columns, values):
            column.append(value)

    def truncate_after(self, step: int) -> None:
        n = _count_le(self.step, step)
        for column in self._columns():
            del column[n:]

    def clear(self) -> None:
        self.truncate_after(-1)

    def x(self, axis: Axis, t0: float = 0.0) -> np.ndarray:
        """The x coordinates on ``axis`` (``time``: seconds since ``t0``)."""
        if axis == "time":
            return np.array(self.time, dtype=np.float64) - t0
        return np.array({"steps": self.step, "tokens": self.tokens, "epochs": self.epoch}[axis], dtype=np.float64)

    def y(self, name: str) -> np.ndarray:
        column = self.values[name]
        return np.frombuffer(column, dtype=np.float32).astype(np.float64) if column else np.zeros(0)


class LossHistory:
    """The training loss (raw and smoothed) of every step, and the validation loss of every evaluation with the
    task's own metrics measured there (a classifier's accuracy), one series per metric."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change; the plot redraws when it moves
        self.train = Series("loss", "smooth")
        self.val = Series("loss")
        self.metrics: dict[str, Series] = {}  # metric name -> its value at each evaluation that measured it

    def _series(self) -> list[Series]:
        return [self.train, self.val, *self.metrics.values()]

    # ------------------------------------------------------------ writers
    def clear(self) -> None:
        with self._lock:
            self.train.clear()
            self.val.clear()
            self.metrics.clear()
            self.version += 1

    def add_step(self, step: int, tokens: int, epoch: float, loss: float, smooth: float, time: float = 0.0) -> None:
        with self._lock:
            if self.train.step and step <= self.train.step[-1]:
                for series in self._series()[1:]:  # the run went back (resume / restore): so did its evals
                    series.truncate_after(step - 1)
            self.train.append(step, tokens, epoch, time, loss, smooth)
            self.version += 1

    def add_eval(self, step: int, tokens: int, epoch: float, val_loss: float, time: float = 0.0,
                 metrics: dict[str, float] | None = None) -> None:
        with self._lock:
            self.val.append(step, tokens, epoch, time, val_loss)
            for name, value in (metrics or {}).items():
                self.metrics.setdefault(name, Series("value")).append(step, tokens, epoch, time, value)
            self.version += 1

    def truncate_after(self, step: int) -> None:
        """Forget every point after ``step`` (a restored checkpoint rewinds the run)."""
        with self._lock:
            for series in self._series():
                series.truncate_after(step)
            self.version += 1

    # ------------------------------------------------------------ readers
    def __len__(self) -> int:
        return len(self.train)

    @property
    def last_step(self) -> int | None:
        with self._lock:
            return self.train.step[-1] if self.train.step else None

    def view(self, options: ViewOptions) -> PlotView:
        """A downsampled copy: ``buckets`` min/max pairs for the raw loss, means for the smoothed loss."""
        with self._lock:
            t0 = self.train.time[0] if self.train.time else (self.val.time[0] if self.val.time else 0.0)
            x, raw = self.train.x(options.axis, t0), self.train.y("loss")
            smooth = self.train.y("smooth") if options.smooth <= 0 else moving_average(raw, options.smooth)
            vx, vy = _points(self.val, "loss", options, t0)
            metrics = {name: _points(series, "value", options, t0) for name, series in self.metrics.items()}
            if options.after_step is not None:  # zoom
                keep = np.frombuffer(self.train.step, dtype=np.int64) > options.after_step
                x, raw, smooth = x[keep], raw[keep], smooth[keep]
        rx, ry, sx, sy = downsample(x, raw, smooth, max(1, options.buckets))
        return PlotView(options.axis, len(x), rx, ry, sx, sy, vx, vy,
                        {name: xy for name, xy in metrics.items() if xy[0]})


def _points(series: Series, name: str, options: ViewOptions, t0: float) -> tuple[list[float], list[float]]:
    """One value per evaluation (x on the view's axis), the zoom's and the finite ones."""
    x, y = series.x(options.axis, t0), series.y(name)
    keep = np.isfinite(y)
    if options.after_step is not None:
        keep &= np.frombuffer(series.step, dtype=np.int64) > options.after_step
    return x[keep].tolist(), y[keep].tolist()


def write_csv(history: LossHistory, path) -> int:
    """The whole history as CSV (one row per step; ``val_loss`` on the steps that were evaluated); rows written."""
    import csv

    with history._lock:
        train = (list(history.train.step), list(history.train.tokens), list(history.train.epoch),
                 list(history.train.time), list(history.train.values["loss"]), list(history.train.values["smooth"]))
        val = dict(zip(history.val.step, history.val.values["loss"]))
    rows = 0
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["step", "tokens_seen", "epoch", "time", "loss", "loss_smooth", "val_loss"])
        for step in sorted(s for s in val if s not in set(train[0])):  # evaluations before any step (step 0)
            out.writerow([step, "", "", "", "", "", f"{val[step]:.6g}"])
            rows += 1
        for step, tokens, epoch, t, loss, smooth in zip(*train):
            out.writerow([step, int(tokens), f"{epoch:.4f}", f"{t:.3f}", f"{loss:.6g}", f"{smooth:.6g}",
                          f"{val[step]:.6g}" if step in val else ""])
            rows += 1
    return rows


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each value and the ``window - 1`` before it (fewer at the start); non-finite ones skipped."""
    finite = np.isfinite(values)
    total = np.cumsum(np.where(finite, values, 0.0))
    count = np.cumsum(finite)
    total[window:] = total[window:] - total[:-window]
    count[window:] = count[window:] - count[:-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


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

"""Loss plot: raw train loss (faint), smoothed train loss, validation points.

Reads the full history from ``LossHistory`` but plots a downsampled view of
about the widget's width (min/max buckets for the raw loss, means for the
smoothed loss), and redraws when the screen's UI tick asks (``maybe_redraw``, once a second) and
only when the history, the axis or the size changed, never per batch.

A plotext build is pure Python and takes 15-50 ms at 120x40. It runs on a
worker thread (the UI thread only blits the finished text), so a key press
never waits behind a plot; and redraws are spaced so building stays under
``MAX_DUTY`` of one core.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual import work
from textual.message import Message
from textual.strip import Strip
from textual_plotext import PlotextPlot

from gptmini import fmt
from gptmini.history import AXES, Axis, LossHistory, PlotView
from gptmini_tui.compat import plotext_set_size, plotext_theme_name

RAW_COLOR = (125, 125, 160)
SMOOTH_COLOR = (64, 196, 255)
VAL_COLOR = (255, 170, 40)


class LossPlot(PlotextPlot):
    DEFAULT_CSS = """
    LossPlot { width: 1fr; height: 1fr; }
    """

    MAX_DUTY = 0.01  # share of one core that re-plotting may use (it holds the GIL training needs)
    MAX_INTERVAL = 3.0  # ... but never fewer redraws than one per this many seconds

    @dataclass
    class Built(Message):
        strips: list
        key: tuple
        view: PlotView
        seconds: float

    def __init__(self, history: LossHistory, interval: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = history
        self.interval = interval  # the shortest spacing of data redraws
        self.axis: Axis = "steps"
        self.build_s = 0.0  # duration of the last plotext build (worker thread)
        self.redraws = 0  # builds shown so far (tests / bench read this)
        self.last_view: PlotView | None = None
        self._strips: list[Strip] = []
        self._drawn_key: tuple | None = None
        self._building = False
        self._next_allowed = 0.0
        self._build_lock = threading.Lock()

    def on_mount(self) -> None:
        self._update_titles()
        self.call_after_refresh(self.maybe_redraw)

    # ----------------------------------------------------------- controls
    def cycle_axis(self) -> Axis:
        i = AXES.index(self.axis)
        self.axis = AXES[(i + 1) % len(AXES)]
        self._update_titles()
        self.maybe_redraw(force=True)
        return self.axis

    def _update_titles(self) -> None:
        self.border_title = f"loss · x: {self.axis}"
        self.border_subtitle = (
            "[rgb(125,125,160)]━ train[/] [rgb(64,196,255)]━ smoothed[/] [rgb(255,170,40)]● val[/]"
        )

    # ------------------------------------------------------------ drawing
    def maybe_redraw(self, force: bool = False) -> None:
        """Start a build if something changed (data: not before the adaptive interval)."""
        if not self.is_mounted or self._building:
            return
        width, height = self.size.width, self.size.height
        if width < 10 or height < 4:
            return
        key = (self.history.version, self.axis, width, height)
        if key == self._drawn_key:
            return
        only_data = self._drawn_key is not None and key[1:] == self._drawn_key[1:]
        if only_data and not force and time.monotonic() < self._next_allowed:
            return
        self._building = True
        self._build(key, plotext_theme_name(self, self.app.theme))

    @work(thread=True, group="loss-plot", exit_on_error=False)
    def _build(self, key: tuple, theme: str) -> None:
        _version, axis, width, height = key
        t0 = time.perf_counter()
        with self._build_lock:  # the Plot object is only ever used here
            view = self.history.view(axis, buckets=max(8, width - 10))
            plt = self.plt
            plt.clear_figure()  # also resets ticks and titles
            plt.frame(True)
            plt.grid(False, False)
            if view.n_points == 0 and not view.val_x:
                plt.xticks([0, 1], ["", ""])
                plt.yticks([0, 1], ["", ""])
                plt.title("waiting for the first step…")
            else:
                if view.raw_x:
                    plt.plot(view.raw_x, view.raw_y, marker="braille", color=RAW_COLOR)
                if view.smooth_x:
                    plt.plot(view.smooth_x, view.smooth_y, marker="braille", color=SMOOTH_COLOR)
                if view.val_x:
                    plt.scatter(view.val_x, view.val_y, marker="●", color=VAL_COLOR)
                self._set_xticks(view, width)
            plt.plotsize(width, height)
            plotext_set_size(plt, width, height)
            plt.theme(theme)
            text = Text.from_ansi(plt.build(), no_wrap=True, overflow="crop")
        # Cut the text into strips here too, so the UI thread only blits them.
        console = self.app.console
        lines = console.render_lines(text, console.options.update(width=width, height=height), pad=True)
        strips = [Strip(line, width) for line in lines[:height]]
        self.post_message(self.Built(strips, key, view, time.perf_counter() - t0))

    def on_loss_plot_built(self, message: Built) -> None:
        message.stop()
        self._building = False
        self._strips = message.strips
        self._drawn_key = message.key
        self.last_view = message.view
        self.build_s = message.seconds
        self.redraws += 1
        spacing = min(self.MAX_INTERVAL, max(self.interval, message.seconds / self.MAX_DUTY))
        self._next_allowed = time.monotonic() + spacing - 0.05
        self.refresh()

    def on_worker_state_changed(self, event) -> None:
        if event.worker.group == "loss-plot" and event.worker.is_finished and event.worker.error is not None:
            self._building = False  # a failed build must not stop future ones

    @property
    def up_to_date(self) -> bool:
        """True when the plot on screen shows the current history, axis and size."""
        return self._drawn_key == (self.history.version, self.axis, self.size.width, self.size.height)

    def render_line(self, y: int) -> Strip:
        """Line API: the strips were built off the UI thread (see ``_build``)."""
        width = self.size.width
        if 0 <= y < len(self._strips):
            strip = self._strips[y]
            return strip if strip.cell_length == width else strip.adjust_cell_length(width)
        return Strip.blank(width)

    def _set_xticks(self, view: PlotView, width: int) -> None:
        xs = view.raw_x + view.val_x
        if not xs:
            self.plt.xticks(None)
            return
        lo, hi = min(xs), max(xs)
        if hi <= lo:
            hi = lo + 1
        n = max(2, min(5, width // 14))
        ticks = np.linspace(lo, hi, n).tolist()
        if view.axis == "tokens":
            labels = [fmt.human_count(t, 1) for t in ticks]
        elif view.axis == "epochs":
            labels = [f"{t:.2f}" for t in ticks]
        else:
            labels = [fmt.human_count(round(t), 1) if t >= 10_000 else f"{round(t)}" for t in ticks]
        self.plt.xticks(ticks, labels)

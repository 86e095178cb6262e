"""Loss plot: the run's raw train loss (faint), smoothed train loss and validation points, a task's accuracy
at each evaluation (a classifier's train and validation accuracy, on a 0-100 % axis at the right), and the
curves of other runs toggled onto it (each in its own colour, smoothed and val).

Reads each full history but plots a downsampled view of about the widget's width (min/max buckets for
the raw loss, means for the smoothed loss), and redraws when the screen's UI tick asks (``maybe_redraw``,
once a second) and only when a history, an option or the size changed, never per batch. A finished
run's view is computed once per option set and kept (its history no longer changes), so tens of runs
of millions of steps cost one downsampling each, not one per redraw.

Options (keys on the screen): the x axis (steps, tokens, epochs, wall time), a log-scale y axis, a zoom
to the last N steps of this run (the other runs are cut at the same step), and the smoothing window
(the engine's running average, or the mean of the last N raw losses).

A plotext build is pure Python and takes 15-50 ms at 120x40. It runs on a worker thread (the UI thread
only blits the finished text), so a key press never waits behind a plot; and redraws are spaced so
building stays under ``MAX_DUTY`` of one core.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from dataclasses import dataclass, field, replace

import numpy as np
from rich.text import Text
from textual import work
from textual.message import Message
from textual.strip import Strip
from textual_plotext import PlotextPlot

from gptmini import fmt
from gptmini.history import AXES, Axis, LossHistory, PlotView, ViewOptions, write_csv
from gptmini_tui.compat import plotext_set_size, plotext_theme_name
from gptmini_tui.messages import Saved

RAW_COLOR = (125, 125, 160)
SMOOTH_COLOR = (64, 196, 255)
VAL_COLOR = (255, 170, 40)
ACCURACY = {  # a task's metrics drawn on the right axis: (legend name, colour, marker of its points)
    "train_accuracy": ("train acc", (150, 200, 100), "braille"),
    "val_accuracy": ("val acc", (90, 240, 150), "◆"),
}
RUN_COLORS = ((255, 99, 132), (75, 210, 140), (200, 120, 255), (255, 220, 90), (80, 220, 230), (255, 140, 60),
              (160, 200, 90), (240, 130, 200), (150, 160, 255), (220, 220, 220))
ZOOMS: tuple[int | None, ...] = (None, 100_000, 10_000, 1_000, 100)  # the last N steps; None: the whole run
SMOOTHINGS = (0, 10, 50, 200, 1000)  # 0: the engine's running average; N: mean of the last N raw losses


@dataclass
class Curve:
    """Another run on the plot."""

    name: str
    history: LossHistory
    color: tuple[int, int, int]
    finished: bool = False


@dataclass
class PlotOptions:
    axis: Axis = "steps"
    log_y: bool = False
    zoom: int | None = None
    smooth: int = 0


@dataclass
class _Built:
    strips: list
    text: Text
    view: PlotView
    views: dict = field(default_factory=dict)  # run name -> its view


class LossPlot(PlotextPlot):
    DEFAULT_CSS = """
    LossPlot { width: 1fr; height: 1fr; }
    """

    MAX_DUTY = 0.01  # share of one core that re-plotting may use (it holds the GIL training needs)
    MAX_INTERVAL = 3.0  # ... but never fewer redraws than one per this many seconds

    @dataclass
    class Built(Message):
        built: _Built
        key: tuple
        seconds: float

    def __init__(self, history: LossHistory, interval: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = history
        self.interval = interval  # the shortest spacing of data redraws
        self.options = PlotOptions()
        self.curves: dict[str, Curve] = {}  # other runs on the plot, by path
        self.build_s = 0.0  # duration of the last plotext build (worker thread)
        self.redraws = 0  # builds shown so far (tests / bench read this)
        self.last_view: PlotView | None = None
        self.last_views: dict[str, PlotView] = {}  # the other runs' views in the last build
        self.last_text: Text | None = None  # the last plot as text (what "save" writes)
        self.metric_names: tuple[str, ...] = ()  # the task's metrics drawn (their legend follows them)
        self._strips: list[Strip] = []
        self._drawn_key: tuple | None = None
        self._building = False
        self._next_allowed = 0.0
        self._build_lock = threading.Lock()
        self._view_cache: dict[tuple, PlotView] = {}

    @property
    def axis(self) -> Axis:
        return self.options.axis

    def on_mount(self) -> None:
        self._update_titles()
        self.call_after_refresh(self.maybe_redraw)

    # ----------------------------------------------------------- controls
    def cycle_axis(self) -> Axis:
        self._set(axis=AXES[(AXES.index(self.options.axis) + 1) % len(AXES)])
        return self.options.axis

    def toggle_log_y(self) -> bool:
        self._set(log_y=not self.options.log_y)
        return self.options.log_y

    def cycle_zoom(self) -> int | None:
        """The next zoom that shows fewer steps than this run has (then the whole run again)."""
        n = len(self.history)
        fitting = [z for z in ZOOMS if z is None or z < n]
        i = fitting.index(self.options.zoom) if self.options.zoom in fitting else 0
        self._set(zoom=fitting[(i + 1) % len(fitting)])
        return self.options.zoom

    def step_smoothing(self, direction: int) -> int:
        i = SMOOTHINGS.index(self.options.smooth) if self.options.smooth in SMOOTHINGS else 0
        self._set(smooth=SMOOTHINGS[min(len(SMOOTHINGS) - 1, max(0, i + direction))])
        return self.options.smooth

    def set_curves(self, curves: dict[str, Curve]) -> None:
        self.curves = dict(curves)
        self._view_cache = {k: v for k, v in self._view_cache.items() if k[0] in self.curves}
        self._update_titles()
        self.maybe_redraw(force=True)

    def _set(self, **changes) -> None:
        self.options = replace(self.options, **changes)
        self._update_titles()
        self.maybe_redraw(force=True)

    def describe_options(self) -> str:
        o = self.options
        zoom = f"last {o.zoom:,} steps" if o.zoom else "whole run"
        smooth = "engine average" if o.smooth == 0 else f"mean of {o.smooth}"
        return f"x: {o.axis} · y: {'log' if o.log_y else 'linear'} · {zoom} · smoothing: {smooth}"

    def _update_titles(self) -> None:
        o = self.options
        extras = [x for x in ("log y" if o.log_y else "", f"last {o.zoom:,}" if o.zoom else "",
                              f"mean {o.smooth}" if o.smooth else "") if x]
        self.border_title = f"loss · x: {o.axis}" + "".join(f" · {x}" for x in extras)
        legend = "[rgb(125,125,160)]━ train[/] [rgb(64,196,255)]━ smoothed[/] [rgb(255,170,40)]● val[/]"
        for name in self.metric_names:
            label, (r, g, b), marker = ACCURACY[name]
            legend += f" [rgb({r},{g},{b})]{'━' if marker == 'braille' else marker} {label}[/]"
        if self.metric_names:
            legend += " (right)"
        for curve in self.curves.values():
            r, g, b = curve.color
            legend += f" [rgb({r},{g},{b})]━ {curve.name}[/]"
        self.border_subtitle = legend

    # ------------------------------------------------------------ drawing
    def _key(self) -> tuple:
        o = self.options
        versions = tuple((path, c.history.version) for path, c in self.curves.items())
        return (self.history.version, versions, o.axis, o.log_y, o.zoom, o.smooth, self.size.width, self.size.height)

    def maybe_redraw(self, force: bool = False) -> None:
        """Start a build if something changed (data: not before the adaptive interval)."""
        if not self.is_mounted or self._building:
            return
        width, height = self.size.width, self.size.height
        if width < 10 or height < 4:
            return
        key = self._key()
        if key == self._drawn_key:
            return
        only_data = self._drawn_key is not None and key[2:] == self._drawn_key[2:]
        if only_data and not force and time.monotonic() < self._next_allowed:
            return
        self._building = True
        self._build(key, plotext_theme_name(self, self.app.theme))

    def _view(self, path: str, curve: Curve, options: ViewOptions) -> PlotView:
        """A run's view; a finished run's is computed once per set of options."""
        if not curve.finished:
            return curve.history.view(options)
        key = (path, curve.history.version, options)
        view = self._view_cache.get(key)
        if view is None:
            view = self._view_cache[key] = curve.history.view(options)
        return view

    @work(thread=True, group="loss-plot", exit_on_error=False)
    def _build(self, key: tuple, theme: str) -> None:
        width, height = key[-2], key[-1]
        o = self.options
        t0 = time.perf_counter()
        last = self.history.last_step
        after = last - o.zoom if o.zoom and last is not None else None
        options = ViewOptions(o.axis, max(8, width - 10), o.smooth, after)
        with self._build_lock:  # the Plot object is only ever used here
            view = self.history.view(options)
            views = {path: self._view(path, c, options) for path, c in list(self.curves.items())}
            plt = self.plt
            plt.clear_figure()  # also resets ticks and titles
            plt.frame(True)
            plt.grid(False, False)
            metrics = {name: xy for name, xy in view.metrics.items() if name in ACCURACY}
            xs = view.raw_x + view.val_x + [x for v in views.values() for x in v.smooth_x + v.val_x]
            xs += [x for mx, _my in metrics.values() for x in mx]
            if not xs:
                plt.xticks([0, 1], ["", ""])
                plt.yticks([0, 1], ["", ""])
                plt.title("waiting for the first step…")
            else:
                for path, v in views.items():
                    color = self.curves[path].color if path in self.curves else RAW_COLOR
                    if v.smooth_x:
                        plt.plot(v.smooth_x, v.smooth_y, marker="braille", color=color)
                    if v.val_x:
                        plt.scatter(v.val_x, v.val_y, marker="•", color=color)
                if view.raw_x:
                    plt.plot(view.raw_x, view.raw_y, marker="braille", color=RAW_COLOR)
                if view.smooth_x:
                    plt.plot(view.smooth_x, view.smooth_y, marker="braille", color=SMOOTH_COLOR)
                if view.val_x:
                    plt.scatter(view.val_x, view.val_y, marker="●", color=VAL_COLOR)
                self._plot_metrics(metrics)
                if o.log_y:
                    plt.yscale("log")
                self._set_xticks(xs, o.axis, width)
            plt.plotsize(width, height)
            plotext_set_size(plt, width, height)
            plt.theme(theme)
            text = Text.from_ansi(plt.build(), no_wrap=True, overflow="crop")
        # Cut the text into strips here too, so the UI thread only blits them.
        console = self.app.console
        lines = console.render_lines(text, console.options.update(width=width, height=height), pad=True)
        strips = [Strip(line, width) for line in lines[:height]]
        names = {path: c.name for path, c in self.curves.items()}
        built = _Built(strips, text, view, {names.get(p, p): v for p, v in views.items()})
        self.post_message(self.Built(built, key, time.perf_counter() - t0))

    def _plot_metrics(self, metrics: dict[str, tuple[list[float], list[float]]]) -> None:
        """A task's accuracy on the right axis, 0-100 % (worker thread, under the build lock)."""
        plt = self.plt
        for name, (mx, my) in metrics.items():
            _label, color, marker = ACCURACY[name]
            plt.plot(mx, my, marker="braille", color=color, yside="right")
            if marker != "braille":
                plt.scatter(mx, my, marker=marker, color=color, yside="right")
        if metrics:
            plt.ylim(0, 1, yside="right")
            plt.yticks([0, 0.5, 1], ["0%", "50%", "100%"], yside="right")

    def on_loss_plot_built(self, message: Built) -> None:
        message.stop()
        self._building = False
        self._strips = message.built.strips
        self._drawn_key = message.key
        self.last_view = message.built.view
        self.last_views = message.built.views
        self.last_text = message.built.text
        names = tuple(name for name in ACCURACY if name in message.built.view.metrics)
        if names != self.metric_names:
            self.metric_names = names
            self._update_titles()
        self.build_s = message.seconds
        self.redraws += 1
        spacing = min(self.MAX_INTERVAL, max(self.interval, message.seconds / self.MAX_DUTY))
        self._next_allowed = time.monotonic() + spacing - 0.05
        self.refresh()

    def on_worker_state_changed(self, event) -> None:
        if event.worker.group == "loss-plot" and event.worker.is_finished and event.worker.error is not None:
            self._building = False  # a failed build must not stop future ones

    def save_svg(self, path, title: str) -> bool:
        """The plot as shown, as an SVG image; False when nothing has been drawn yet."""
        import io

        from rich.console import Console

        if self.last_text is None:
            return False
        console = Console(record=True, file=io.StringIO(), width=self.size.width, color_system="truecolor")
        console.print(self.last_text)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(console.export_svg(title=title))
        return True

    @work(thread=True, group="save-plot", exit_on_error=False)
    def export(self, folder: Path, name: str) -> None:
        """The plot as an SVG image and the run's metrics as CSV, into ``folder``; ``Saved`` says where."""
        stem = folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            drawn = self.save_svg(stem.with_suffix(".svg"), f"GPTMini loss · {name} · {self.describe_options()}")
            rows = write_csv(self.history, stem.with_suffix(".csv"))
        except OSError as exc:
            self.post_message(Saved(f"could not save in {folder}: {exc}", ok=False))
            return
        saved = (f"{stem.name}.svg and " if drawn else "") + f"{stem.name}.csv ({rows:,} rows)"
        self.post_message(Saved(f"saved {saved} in {folder}"))

    @property
    def up_to_date(self) -> bool:
        """True when the plot on screen shows the current histories, options and size."""
        return self._drawn_key == self._key()

    def render_line(self, y: int) -> Strip:
        """Line API: the strips were built off the UI thread (see ``_build``)."""
        width = self.size.width
        if 0 <= y < len(self._strips):
            strip = self._strips[y]
            return strip if strip.cell_length == width else strip.adjust_cell_length(width)
        return Strip.blank(width)

    def _set_xticks(self, xs: list[float], axis: Axis, width: int) -> None:
        lo, hi = min(xs), max(xs)
        if hi <= lo:
            hi = lo + 1
        ticks = np.linspace(lo, hi, max(2, min(5, width // 14))).tolist()
        if axis == "tokens":
            labels = [fmt.human_count(t, 1) for t in ticks]
        elif axis == "epochs":
            labels = [f"{t:.2f}" for t in ticks]
        elif axis == "time":
            labels = [fmt.duration(t) for t in ticks]
        else:
            labels = [fmt.human_count(round(t), 1) if t >= 10_000 else f"{round(t)}" for t in ticks]
        self.plt.xticks(ticks, labels)

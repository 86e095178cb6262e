"""Runs: the run folders found beside this one (and under ``--compare``), and which of them are on the plot.

The pane keeps its list fresh itself (a worker re-reads runs whose metrics changed, every few seconds)
and toggles runs onto the plot (Enter on a row, or ``o``): the run's curve is loaded on a worker and
followed while it grows. ``CurvesChanged`` bubbles up so the screen can hand the curves to the plot.
Under the table, one line says how the highlighted run's options differ from this run's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from gptmini import fmt
from gptmini.runs import Comparison, RunIndex, RunSummary, find_run_folders, options_diff
from gptmini_tui.widgets.loss_plot import RUN_COLORS


def color_of(index: int) -> tuple[int, int, int]:
    return RUN_COLORS[index % len(RUN_COLORS)]


class RunsPanel(Vertical):
    DEFAULT_CSS = """
    RunsPanel { height: 1fr; }
    RunsPanel DataTable { height: 1fr; }
    RunsPanel #runs-diff { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    """

    @dataclass
    class Listed(Message):
        summaries: list = field(default_factory=list)

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunsPanel.Listed)

    @dataclass
    class CurvesChanged(Message):
        """The runs on the plot, or their curves, changed."""

    def __init__(self, compare: list[Path], comparison: Comparison, current: Callable[[], Path | None],
                 clock=time.time, **kwargs) -> None:
        super().__init__(**kwargs)
        self.index = RunIndex(*compare)
        self.compare = list(compare)  # the --compare roots whose runs go on the plot (show_compared)
        self.comparison = comparison
        self.current = current  # this run's folder (not toggled: it is always on the plot)
        self.clock = clock
        self.summaries: list[RunSummary] = []
        self.table = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        self.diff = Static("", id="runs-diff")
        self._busy = False
        self._dirty = False  # the list changed while the panel was hidden: draw it when it shows

    def compose(self) -> ComposeResult:
        yield self.table
        yield self.diff

    def on_mount(self) -> None:
        # what tells runs apart first; the rest scrolls in from the right on a narrow screen
        for key, label in (("mark", ""), ("name", "run"), ("steps", "steps"), ("best", "best val"), ("state", ""),
                           ("when", "updated"), ("model", "model"), ("tokens", "tokens"), ("corpus", "corpus"),
                           ("tok", "tokenizer")):
            self.table.add_column(label, key=key)
        self.refresh_runs()
        self.set_interval(3.0, self.refresh_runs)

    # -------------------------------------------------------------- listing
    def refresh_runs(self) -> None:
        if not self._busy:
            self._busy = True
            self._work()

    @work(thread=True, group="runs", exit_on_error=False)
    def _work(self) -> None:
        try:
            summaries = self.index.refresh()
            changed = self.comparison.poll()
        finally:
            self._busy = False
        self.post_message(self.Listed(summaries))
        if changed:
            self.post_message(self.CurvesChanged())

    @on(Listed)
    def _listed(self, message: Listed) -> None:
        self.summaries = message.summaries
        self._show()

    @property
    def drawn(self) -> bool:
        """The table shows the newest listing (it is drawn only while the panel is visible)."""
        return self.size.width > 0 and not self._dirty and self.table.row_count == len(self.summaries)

    def on_show(self) -> None:
        if self._dirty:
            self._show()

    def on_resize(self) -> None:
        if self._dirty:
            self._show()

    def _show(self) -> None:
        if self.size.width == 0:  # hidden behind another tab: a redraw nobody sees costs the UI thread
            self._dirty = True
            return
        self._dirty = False
        table = self.table
        selected = self.selected()
        table.clear()
        now, current = self.clock(), self.current()
        for s in reversed(self.summaries):  # newest first
            table.add_row(*self._cells(s, now, current), key=str(s.path))
        if selected is not None:
            for row, s in enumerate(reversed(self.summaries)):
                if s.path == selected.path:
                    table.move_cursor(row=row)
        self._show_diff()

    def _cells(self, s: RunSummary, now: float, current: Path | None) -> list:
        if current is not None and s.path == current.resolve():
            mark = Text("▶", style="bold")
        elif s.path in self.comparison.shown:
            mark = Text("━", style="rgb({},{},{})".format(*color_of(self.comparison.color(s.path))))
        else:
            mark = Text("")
        return [mark, s.name, Text(f"{s.steps:,}", justify="right"), Text(fmt.loss(s.best_val), justify="right"),
                Text("live", style="bold green") if s.live else Text("done", style="dim"),
                Text(fmt.age(s.updated, now), justify="right"), s.model,
                Text(fmt.human_count(s.tokens), justify="right"), s.corpus, s.tokenizer]

    # ------------------------------------------------------------ toggling
    def selected(self) -> RunSummary | None:
        row = self.table.cursor_row
        ordered = list(reversed(self.summaries))
        return ordered[row] if ordered and row is not None and 0 <= row < len(ordered) else None

    def toggle_selected(self) -> str:
        """Put the highlighted run on the plot or take it off; what happened, for the user."""
        s = self.selected()
        if s is None:
            return "no run to show: the Runs panel lists the run folders beside this one"
        current = self.current()
        if current is not None and s.path == current.resolve():
            return "this run is always on the plot"
        self.comparison.color(s.path)  # colours go in the order runs are asked for, on this thread
        self._toggle(s.path)
        return f"{'hiding' if s.path in self.comparison.shown else 'loading'} {s.name}…"

    @work(thread=True, group="runs-toggle", exit_on_error=False)
    def _toggle(self, path: Path) -> None:
        self.comparison.toggle(path)
        self.post_message(self.CurvesChanged())

    def show_compared(self) -> None:
        """Put the ``--compare`` runs on the plot (once), loading them on a worker. The screen asks once
        this run has trained a step, paused or ended: finding and reading millions of logged steps holds
        the interpreter for seconds, and this run's start comes first."""
        roots, self.compare = self.compare, []
        for path in [p for root in roots for p in find_run_folders(root)]:
            if path.resolve() not in self.comparison.shown:
                self.comparison.color(path.resolve())
                self._toggle(path)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.notify(self.toggle_selected(), timeout=2)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_diff()

    @on(CurvesChanged)
    def _curves_changed(self) -> None:
        self._show()

    def _show_diff(self) -> None:
        s, current = self.selected(), self.current()
        this = next((x for x in self.summaries if current is not None and x.path == current.resolve()), None)
        if s is None or this is None or s.path == this.path:
            self.diff.update("")
            return
        diff = options_diff(this, s)
        self.diff.update(Text(f"{s.name} vs this run: " + ("; ".join(diff) if diff else "the same options"),
                              overflow="ellipsis"))

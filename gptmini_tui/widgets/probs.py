"""Next-token probabilities: top candidates as bars, raw (T=1) and after the active strategy's filter."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from gptmini_tui import fmt

BAR = "█"
PARTIAL = " ▏▎▍▌▋▊▉"


def bar(frac: float, width: int) -> str:
    frac = min(1.0, max(0.0, frac))
    cells = frac * width
    full = int(cells)
    rest = int((cells - full) * 8)
    s = BAR * full + (PARTIAL[rest] if rest and full < width else "")
    return s.ljust(width)


class ProbsView(Static):
    DEFAULT_CSS = """
    ProbsView { height: 1fr; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.candidates: list = []
        self.label = ""
        self.message = "type a prompt to see the next-token distribution"
        self.weights_step: int | None = None
        self._show()

    def show_message(self, message: str) -> None:
        self.candidates = []
        self.message = message
        self._show()

    def show_candidates(self, candidates: list, label: str, weights_step: int | None) -> None:
        self.candidates = list(candidates)
        self.label = label
        self.weights_step = weights_step
        self.message = ""
        self._show()

    def on_resize(self) -> None:
        self._show()

    def _show(self) -> None:
        if not self.candidates:
            self.update(Text(self.message, style="dim italic"), layout=False)
            return
        width = max(20, self.size.width or 38)
        narrow = width < 40
        tok_w, pct_w = 7, 5
        if narrow:
            raw_w, bar_w = pct_w, max(3, width - tok_w - pct_w - pct_w - 2)
        else:
            bar_w = max(3, (width - tok_w - 2 * pct_w - 2) // 2)
            raw_w = bar_w + pct_w
        table = Table.grid(padding=(0, 1) if narrow else (0, 0))
        table.add_column(no_wrap=True, overflow="ellipsis", width=tok_w)
        table.add_column(no_wrap=True, width=raw_w + (0 if narrow else 1))
        table.add_column(no_wrap=True, width=bar_w + pct_w)
        table.add_row(
            Text("token", style="dim"),
            Text("raw" if narrow else "raw (T=1)", style="dim"),
            Text(self.label, style="dim", overflow="ellipsis", no_wrap=True),
        )
        # bars are scaled to the largest probability shown, so the top candidate fills its column
        top = max([c.prob for c in self.candidates] + [c.filtered_prob for c in self.candidates] + [1e-9])
        for c in self.candidates:
            raw = Text() if narrow else Text(bar(c.prob / top, bar_w), style="rgb(110,110,150)")
            raw.append(_pct(c.prob), style="dim" if narrow else "")
            if c.filtered_prob > 0:
                filt = Text(bar(c.filtered_prob / top, bar_w), style="rgb(64,196,255)")
                filt.append(_pct(c.filtered_prob))
            else:
                filt = Text("filtered", style="dim strike")
            table.add_row(Text(fmt.token_repr(c.text), style="bold"), raw, filt)
        self.update(table, layout=False)


def _pct(p: float) -> str:
    return f"{100 * p:4.0f}%" if p >= 0.01 else f"{100 * p:4.1f}%"

"""Next-token probabilities: top candidates as bars, raw (T=1) and after the active strategy's filter; for a
classifier, the probability of each label for the text typed.

The view computes them itself: ``schedule()`` debounces requests (typing, key repeats, evaluations)
and a thread worker asks the weights its ``source`` gives (``RunSession.sampling_source``).

It follows the live weights (``follow``, from the screen's one-second tick): when the session already holds
newer weights than those shown (a reply or an evaluation took them), the view asks again at no cost; when
only the training moved on, it asks again at most every ``FOLLOW_EVERY`` seconds and, measured, never more
than ``MAX_DUTY`` of a core (a new snapshot copies the weights between two steps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static

from gptmini import fmt
from gptmini.errors import error_text
from gptmini_tui.settings import PlaygroundSettings
from gptmini_tui.task_mode import TaskMode

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

    MAX_WAIT = 1.0  # seconds a debounced request may be pushed back by newer triggers
    FOLLOW_EVERY = 3.0  # seconds between two distributions that follow the training by a new snapshot
    MAX_DUTY = 0.01  # ... spaced further apart when one takes long: at most this share of a core
    MAX_SPACING = 30.0  # ... but never fewer than one per this many seconds (the time waits for a step too)

    @dataclass
    class Ready(Message):
        request: int
        label: str
        candidates: list = field(default_factory=list)
        weights_step: int | None = None
        error: str | None = None
        seconds: float = 0.0  # how long the worker took (the snapshot and the forward)
        prompt: str = ""  # what it was computed for

    def __init__(self, source: Callable[[], Any] | None = None, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.source = source  # () -> SamplingSource, blocking (called on the worker thread)
        self.prompt = ""
        self.settings = PlaygroundSettings()
        self.needs_prompt = True  # a char model has no start token: it needs a prompt to predict from
        self.candidates: list = []
        self.label = ""
        self.weights_step: int | None = None
        self.shown_prompt: str | None = None  # the prompt the candidates shown were computed for
        self.mode = TaskMode()
        self.message = self._hint()
        self._request = 0
        self._answered = 0  # the newest request answered (the others are in flight or queued)
        self._timer: Timer | None = None
        self._due_by = 0.0
        self._follow_at = 0.0  # time.monotonic() before which following the training waits
        self._show()

    @property
    def title(self) -> str:
        return "labels" if self.mode.classify else "next token"

    def set_mode(self, mode: TaskMode, needs_prompt: bool) -> None:
        """Next tokens, or (a classifier) the probability of each label; ``needs_prompt``: the model cannot
        predict from nothing (a char model has no start token; a classifier needs a text)."""
        self.needs_prompt = needs_prompt or mode.classify
        if mode != self.mode:
            self.mode = mode
            self.border_title = self.title
            self.show_message(self._hint())

    def _hint(self) -> str:
        if self.mode.classify:
            return "type a text to see the probability of each label"
        return "type a prompt to see the next-token distribution"

    # ------------------------------------------------------------ requests
    def schedule(self, prompt: str | None = None, settings: PlaygroundSettings | None = None,
                 delay: float = 0.3) -> None:
        """Recompute for ``prompt`` / ``settings`` (default: the last ones) after ``delay`` seconds.

        Each call restarts the delay, but a pending request is never pushed back more than ``MAX_WAIT``
        past the first call: a steady stream of triggers (a fast run's evaluations) must not starve it.
        """
        if prompt is not None:
            self.prompt = prompt
        if settings is not None:
            self.settings = settings
        now = time.monotonic()
        if self._timer is None:
            self._due_by = now + self.MAX_WAIT
        else:
            self._timer.stop()
            self._timer = None
        wait = min(delay, self._due_by - now)
        if wait > 0:
            self._timer = self.set_timer(wait, self._request_now)
        else:  # never a zero-delay timer: Textual's timer divides by its interval
            self.call_later(self._request_now)

    def _request_now(self) -> None:
        self._timer = None
        if self.source is None:
            return
        if self.prompt == "" and self.needs_prompt:
            self.show_message(self._hint())
            return
        self._request += 1
        self._compute(self._request, self.prompt, self.settings.sampling(), self.mode)

    def follow(self, newest_step: int | None, held_step: int | None, snapshot: bool = True) -> None:
        """Ask again when the weights shown are behind: at once when the session holds newer ones
        (``held_step``), by a new snapshot (``snapshot``) when the training (``newest_step``) moved on and
        ``FOLLOW_EVERY`` passed. Nothing while a request is pending or nothing was shown yet."""
        shown = self.weights_step
        if shown is None or not self.candidates or self._timer is not None or self._answered != self._request:
            return
        if held_step is not None and held_step > shown:
            self._request_now()
        elif snapshot and newest_step is not None and newest_step > shown and time.monotonic() >= self._follow_at:
            self._request_now()

    @work(thread=True, exclusive=True, group="probs", exit_on_error=False)
    def _compute(self, request: int, prompt: str, settings, mode: TaskMode) -> None:
        from gptmini.sample.sampler import Sampler
        from gptmini.train.omp import limit_this_thread

        if request != self._request:
            return  # a newer request is already queued
        limit_this_thread(1)  # sample beside training without a second OpenMP team (gptmini/omp.py)
        label = "labels" if mode.classify else settings.describe()
        t0 = time.perf_counter()
        try:
            src = self.source()
            if mode.classify:
                cands = label_probabilities(src, prompt, mode)
            else:
                cands = Sampler(src.model, src.tokenizer).next_token_distribution(prompt, settings, top_n=10)
        except Exception as exc:
            self.post_message(self.Ready(request, label, error=error_text(exc)))
            return
        self.post_message(self.Ready(request, label, cands, src.step, seconds=time.perf_counter() - t0, prompt=prompt))

    @on(Ready)
    def _ready(self, message: Ready) -> None:
        if message.request != self._request:
            return
        self._answered = message.request
        spacing = min(self.MAX_SPACING, max(self.FOLLOW_EVERY, message.seconds / self.MAX_DUTY))
        self._follow_at = time.monotonic() + spacing
        if message.error:
            self.show_message(message.error)
        else:
            self.show_candidates(message.candidates, message.label, message.weights_step)
            self.shown_prompt = message.prompt
        step = f" · step {message.weights_step:,}" if message.weights_step is not None else ""
        self.border_title = f"{self.title}{step}"

    # ------------------------------------------------------------- drawing

    def show_message(self, message: str) -> None:
        self.candidates = []
        self.shown_prompt = None
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
        if self.mode.classify:
            self.update(label_bars(self.candidates, width), layout=False)
            return
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


@dataclass(frozen=True)
class LabelProbability:
    label: str
    prob: float


def label_probabilities(source, text: str, mode: TaskMode) -> list[LabelProbability]:
    """The probability the classifier gives each of its labels for ``text`` (blocking; a worker thread)."""
    probs = source.label_probabilities(text)
    labels = mode.labels if len(mode.labels) == len(probs) else tuple(f"label {i}" for i in range(len(probs)))
    return [LabelProbability(label, p) for label, p in zip(labels, probs)]


def label_bars(rows: list[LabelProbability], width: int) -> Text:
    """One line per label, in the head's order: its name, a bar of its probability, the percentage; the most
    probable in bold."""
    name_w = min(max(len(r.label) for r in rows), max(6, width // 3))
    bar_w = max(3, width - name_w - 7)
    best = max(rows, key=lambda r: r.prob)
    out = Text(no_wrap=True, overflow="ellipsis")
    for i, r in enumerate(rows):
        if i:
            out.append("\n")
        out.append(r.label[:name_w].ljust(name_w) + " ", style="bold" if r is best else "")
        out.append(bar(r.prob, bar_w), style="rgb(64,196,255)" if r is best else "rgb(110,110,150)")
        out.append(_pct(r.prob), style="bold" if r is best else "")
    return out

"""Training counters: state, epoch/batch/step, tokens, losses, a task's accuracy (train and validation at each
evaluation, test when the run completes), lr, speed, ETA, progress bars.

Everything below the state line is one ``Static`` rebuilt as a single ``Text``: the two progress bars
are drawn as text in the same update instead of two ``ProgressBar`` widgets (each with its own 1 s
timer and four reactive child widgets). Measured in a pty on the micro model, the widgets' repaints
cost about 1.5 % of a core that training could use.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from gptmini import fmt
from gptmini.events import RunState

STATE_STYLE = {
    "starting": ("◌ STARTING", "state-starting"),
    "running": ("● RUNNING", "state-running"),
    "paused": ("❚❚ PAUSED", "state-paused"),
    "pausing": ("❚❚ PAUSING…", "state-paused"),  # shown from the key press until the engine confirms
    "resuming": ("● RESUMING…", "state-running"),
    "stopping": ("■ STOPPING", "state-stopping"),
    "finished": ("✔ FINISHED", "state-finished"),
    "error": ("✖ ERROR", "state-error"),
    "attached": ("⇄ ATTACHED", "state-attached"),
    "idle": ("○ NO RUN", "state-idle"),
}


class StateLabel(Static):
    """Coloured run state; ``state`` is what tests and the benchmark read."""

    DEFAULT_CSS = """
    StateLabel { width: 1fr; height: 1; text-style: bold; }
    StateLabel.state-starting { color: $text-muted; }
    StateLabel.state-running { color: $success; }
    StateLabel.state-paused { color: $warning; }
    StateLabel.state-stopping { color: $warning; }
    StateLabel.state-finished { color: $accent; }
    StateLabel.state-error { color: $error; }
    StateLabel.state-attached { color: $secondary; }
    StateLabel.state-idle { color: $text-muted; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.state = ""
        self.detail = ""

    def set_state(self, state: str, detail: str = "") -> None:
        if state == self.state and detail == self.detail:
            return
        text, cls = STATE_STYLE.get(state, (state.upper(), "state-idle"))
        for _t, c in STATE_STYLE.values():
            self.remove_class(c)
        self.add_class(cls)
        self.state = state
        self.detail = detail
        self.update(Text(text + (f"  {detail}" if detail else ""), no_wrap=True, overflow="ellipsis"), layout=False)


class Counters(Vertical):
    """Right-hand stats panel. ``show_step`` takes the newest ``Step`` event."""

    DEFAULT_CSS = """
    Counters { height: 1fr; padding: 0 1; }
    Counters #stats { height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # children are kept as attributes: updates never depend on a DOM query
        self.state_label = StateLabel(id="state")
        self._stats = Static(id="stats")
        self.unsaved: int | None = None  # steps since the last checkpoint (given with each step)
        self.started_at: float | None = None  # run start (wall clock), for the elapsed time
        self.newest = None  # the newest step given (``_step`` is what shows: after a restore, where it continues)
        self._step = None
        self._val_loss: float | None = None
        self._val_best: float | None = None
        self._epochs: int | None = None
        self._metrics: dict[str, float] = {}  # the task's metrics at the newest evaluation (accuracy)
        self._final: dict[str, float] = {}  # the task's measures of the finished model (test accuracy)
        self._last_render: tuple | None = None
        self._n_rows = -1

    def compose(self) -> ComposeResult:
        yield self.state_label
        yield self._stats

    def on_mount(self) -> None:
        self.render_stats()

    def on_resize(self) -> None:
        self.render_stats()  # how many optional rows fit depends on the height

    def set_state(self, state: str, detail: str = "") -> None:
        self.state_label.set_state(state, detail)

    def note_idle(self, state: str, last_update: float | None, now: float) -> None:
        """Attach mode: say how long the followed run has been silent (over 30 s while it should train)."""
        if last_update is not None and state in (RunState.RUNNING, RunState.STARTING) and now - last_update > 30:
            self.set_state(state, f"no update for {fmt.duration(now - last_update)}")

    def reset(self, epochs: int | None = None) -> None:
        self.newest = None
        self._step = None
        self._val_loss = None
        self._val_best = None
        self._epochs = epochs
        self._metrics, self._final = {}, {}
        self.render_stats()

    def set_epochs(self, epochs: int | None) -> None:
        self._epochs = epochs

    def show_step(self, step, unsaved: int | None, force: bool = False) -> None:
        """Show the newest step (None: none yet) and the steps since the last checkpoint; the step already
        given again only with ``force`` (the unsaved count changed, or the run paused or ended)."""
        if step is None or (step is self.newest and not force):
            return
        self.newest = self._step = step
        self.unsaved = unsaved
        self.render_stats()

    def show_restored(self, step: int, epoch: int, tokens_seen: int) -> None:
        """After a restore and before the next step: show where training will continue."""
        old = self._step
        if old is None:
            return
        from dataclasses import replace

        batch = max(0, step - (epoch - 1) * old.batches_per_epoch)
        self._step = replace(
            old, step=step, epoch=epoch, batch=batch, tokens_seen=tokens_seen, eta_s=None,
        )
        self.render_stats()

    def show_eval(self, val_loss: float | None, best: bool = False, metrics: dict | None = None) -> None:
        self._val_loss = val_loss
        if val_loss is not None and (best or self._val_best is None or val_loss < self._val_best):
            self._val_best = val_loss
        self._metrics = dict(metrics or {})
        self.render_stats()

    def show_final(self, metrics: dict) -> None:
        """The finished model's measures (``Finished.metrics``: a classifier's test accuracy)."""
        self._final = dict(metrics)
        self.render_stats()

    def _task_row(self) -> list[tuple[str, str, str, str]]:
        """A classifier's accuracy at the newest evaluation, under the losses (train | val columns)."""
        m = self._metrics
        if "train_accuracy" in m or "val_accuracy" in m:
            return [("acc", pct(m.get("train_accuracy")), "val", pct(m.get("val_accuracy")))]
        return []

    def _speed_row(self, s) -> tuple[str, str, str, str]:
        """Speed and time left; once the run completed with a test accuracy, that instead (nothing is left)."""
        if "test_accuracy" in self._final:
            return ("test", pct(self._final["test_accuracy"]), "", "")
        if s is None:
            return ("tok/s", "–", "ETA", "–")
        return ("tok/s", fmt.human_count(s.tok_per_s, 1), "ETA", fmt.duration(s.eta_s))

    def _format_rows(self, rows: list[tuple[str, str, str, str]], width: int) -> Text:
        """Two label/value column pairs in fixed widths (much cheaper than a Rich Table per update)."""
        half = width // 2
        lw = 7 if width < 36 else 8
        vw = half - lw - 1
        out = Text(no_wrap=True, overflow="crop")
        for i, (l1, v1, l2, v2) in enumerate(rows):
            if i:
                out.append("\n")
            out.append(l1.ljust(lw), style="dim")
            out.append(v1.rjust(vw)[-vw:] + " ")
            out.append(l2.ljust(lw - 1), style="dim")
            out.append(v2.rjust(width - half - lw + 1)[-(width - half - lw + 1):])
        return out

    def render_stats(self) -> None:
        s = self._step
        key = (id(s), self._val_loss, self._epochs, self.size.width, self.size.height, self.unsaved,
               tuple(self._metrics.items()), tuple(self._final.items()))
        if key == self._last_render:
            return
        self._last_render = key
        rows: list[tuple[str, str, str, str]] = []
        if s is None:
            rows.append(("step", "–", "epoch", f"–/{self._epochs or '–'}"))
            rows.append(("batch", "–", "tokens", "–"))
            rows.append(("loss", "–", "val", fmt.loss(self._val_loss)))
            rows += self._task_row()
            rows.append(("ppl", "–", "lr", "–"))
            rows.append(self._speed_row(None))
        else:
            epochs = self._epochs or max(1, math.ceil(s.total_steps / max(1, s.batches_per_epoch)))
            rows.append(("step", f"{s.step:,}", "epoch", f"{s.epoch}/{epochs}"))
            rows.append(("batch", f"{s.batch}/{s.batches_per_epoch}", "tokens", fmt.human_count(s.tokens_seen)))
            rows.append(("loss", fmt.loss(s.loss_smooth), "val", fmt.loss(self._val_loss)))
            rows += self._task_row()
            ppl_src = self._val_loss if self._val_loss is not None else s.loss_smooth
            rows.append(("ppl", fmt.perplexity(ppl_src), "lr", fmt.lr(s.lr)))
            rows.append(self._speed_row(s))
            if s.mfu is not None or s.gpu_mem_gb is not None:
                rows.append((
                    "MFU", "–" if s.mfu is None else f"{100 * s.mfu:.1f}%",
                    "mem", "–" if s.gpu_mem_gb is None else f"{s.gpu_mem_gb:.1f}G",
                ))
            room = self.size.height - 3  # state line + two bars
            if room >= len(rows) + 1:
                rows.append(("grad", f"{s.grad_norm:.2f}", "best", fmt.loss(self._val_best)))
            if room >= len(rows) + 1:
                elapsed = None if self.started_at is None else max(0.0, s.time - self.started_at)
                unsaved = "–" if self.unsaved is None else f"{self.unsaved:,}"
                rows.append(("unsaved", unsaved, "time", fmt.duration(elapsed)))
        if s is None:
            epoch_frac = run_frac = 0.0
        else:
            epoch_frac = s.batch / max(1, s.batches_per_epoch)
            run_frac = min(s.step, s.total_steps) / max(1, s.total_steps)
        width = max(24, self.size.width or 38)
        text = self._format_rows(rows, width)
        text.append("\n")
        text.append_text(progress_bar("epoch", epoch_frac, width))
        text.append("\n")
        text.append_text(progress_bar("run", run_frac, width))
        self._stats.update(text, layout=len(rows) != self._n_rows)
        self._n_rows = len(rows)


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


BAR_DONE = "rgb(64,196,255)"
BAR_TODO = "rgb(70,70,90)"


def progress_bar(label: str, fraction: float, width: int) -> Text:
    """``label ━━━━━━━╸━━━━━━  45%`` in ``width`` cells, drawn in half cells like Textual's ProgressBar."""
    fraction = min(1.0, max(0.0, fraction))
    pct = f"{int(100 * fraction):>4d}%"
    n = max(4, width - 6 - len(pct) - 1)
    halves = int(2 * n * fraction)
    full, half = divmod(halves, 2)
    out = Text(label.ljust(6), style="dim", no_wrap=True, overflow="crop")
    out.append("━" * full, style=BAR_DONE)
    if half:
        out.append("╸", style=BAR_DONE)
    rest = n - full - half
    if rest:
        out.append(("╺" if not half and full else "━") + "━" * (rest - 1), style=BAR_TODO)
    out.append(" " + pct)
    return out

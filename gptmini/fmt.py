"""How numbers and events read, for the command line and the console alike (pure functions).

Sizes, losses, epochs, durations, rates; and ``event_line``: the one line of text each engine event
gets in the CLI's output and the console's log.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from rich.text import Text

from gptmini import events as ev


def human_count(n: float | int | None, digits: int = 2) -> str:
    """1234 -> 1.23k, 1_500_000 -> 1.50M."""
    if n is None:
        return "–"
    n = float(n)
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.{digits}f}{suffix}"
    return f"{n:.0f}"


def human_bytes(n: float | None) -> str:
    """1536 -> 1.5 KB (binary multiples, as file managers show them)."""
    if n is None:
        return "–"
    for div, suffix in ((1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB")):
        if n >= div:
            return f"{n / div:.1f} {suffix}"
    return f"{int(n)} B"


def epochs(value: float | None) -> str:
    """Epochs done as a fraction: 1.50 = half way through the second epoch."""
    return "–" if value is None else f"{value:.2f}"


def duration(seconds: float | None) -> str:
    """Seconds -> '42s', '4m12s', '3h05m', '2d04h'."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def age(then: float, now: float | None = None) -> str:
    now = time.time() if now is None else now
    return duration(max(0.0, now - then))


def loss(value: float | None) -> str:
    if value is None:
        return "–"
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf"
    return f"{value:.3f}"


def perplexity(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    try:
        ppl = math.exp(value)
    except OverflowError:
        return "inf"
    if ppl >= 1e5:
        return f"{ppl:.2e}"
    return f"{ppl:.2f}" if ppl < 100 else f"{ppl:.0f}"


def clock(t: float) -> str:
    """Wall-clock time HH:MM:SS (local)."""
    return time.strftime("%H:%M:%S", time.localtime(t))


def lr(value: float | None) -> str:
    """3e-4 style: short enough for the narrow counters panel."""
    if value is None:
        return "–"
    if value == 0:
        return "0"
    mant, exp = f"{value:.1e}".split("e")
    return f"{mant}e{int(exp)}"


def token_repr(text: str) -> str:
    """Show a token so whitespace and control characters are visible."""
    out = (
        text.replace("\\", "\\\\")
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("\r", "\\r")
    )
    if out.startswith(" "):
        out = "␣" + out[1:]
    if out == "":
        out = "∅"
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in out)


# ----------------------------------------------------------------- events
@dataclass(frozen=True)
class Line:
    level: str  # info / eval / sample / save / warning / error / state
    text: Text


class _EventLines(ev.Handler):
    """One line per event worth telling; ``Step`` has none (counters and progress bars show steps)."""

    def on_run_started(self, e: ev.RunStarted) -> Line:
        mc = e.model_config
        resumed = f"; resumed at step {e.start_step:,} from {e.resumed_from}" if e.resumed_from else ""
        if e.init_from:
            resumed += f"; started from {e.init_from}'s weights"
        if e.changed:
            resumed += " with " + ", ".join(f"--{k.replace('_', '-')} {option_value(old)} → {option_value(new)}"
                                            for k, (old, new) in e.changed.items())
        return Line("info", Text(
            f"run {e.run_name}: {human_count(e.n_params)} params ({mc.get('n_layers')} layers, "
            f"{mc.get('n_heads')} heads, d_model {mc.get('d_model')}, context {e.context_length}) on {e.device} "
            f"({e.dtype}{', compiled' if e.compiled else ''}, {e.optimizer}); {e.corpus} "
            f"({human_bytes(e.corpus_bytes)}): {e.train_tokens:,} train / "
            f"{e.val_tokens:,} val {e.tokenizer} tokens; {e.batches_per_epoch:,} steps per epoch × {e.epochs} "
            f"epochs = {e.total_steps:,} steps{resumed}; run folder {e.run_dir}"))

    def on_data_progress(self, e: ev.DataProgress) -> Line | None:
        if e.done_bytes < e.total_bytes:
            return None
        if e.from_cache:
            return Line("info", Text(f"{e.label}: tokens from the cache"))
        rate = e.total_bytes / 1e6 / max(e.elapsed_s, 1e-9)
        return Line("info", Text(f"tokenised {e.label} in {e.elapsed_s:.1f} s ({rate:.1f} MB/s); "
                                 f"cached for the next run"))

    def on_eval(self, e: ev.Eval) -> Line:
        train = f"train loss {loss(e.train_loss)}, " if e.train_loss is not None else ""
        best = " ★ best" if e.best else ""
        return Line("eval", Text(f"step {e.step:,}, epoch {e.epoch}: {train}val loss {loss(e.val_loss)}, "
                                 f"perplexity {perplexity(e.val_loss)}{metrics(e.metrics)}{best}"))

    def on_sample(self, e: ev.Sample) -> Line:
        text = Text(f"step {e.step:,} sample: ")
        text.append(e.prompt.replace("\n", " "), style="bold cyan")
        if e.reference is None:  # a continuation of the prompt
            text.append(e.text.replace("\n", " "))  # one line per sample, as Raschka's generate_and_print_sample
        else:  # an answer to it, beside the one it should have given
            text.append(" → ")
            text.append(e.text.replace("\n", " "))
            text.append(f"  (reference: {e.reference.replace(chr(10), ' ')})", style="dim")
        return Line("sample", text)

    def on_checkpoint_saved(self, e: ev.CheckpointSaved) -> Line:
        return Line("save", Text(f"checkpoint saved at step {e.step:,} ({e.reason}, {e.seconds:.2f} s): {e.path}"))

    def on_checkpoint_restored(self, e: ev.CheckpointRestored) -> Line:
        return Line("save", Text(f"restored step {e.step:,} (epoch {e.epoch}) from {e.path}"))

    def on_state_changed(self, e: ev.StateChanged) -> Line:
        return Line("state", Text(f"state → {e.state} (step {e.step:,})"))

    def on_warning(self, e: ev.Warning) -> Line:
        return Line("warning", Text(e.message))

    def on_error(self, e: ev.Error) -> Line:
        fatal = " (run stopped)" if e.fatal else ""
        return Line("error", Text(f"[{e.error_kind}] {e.message}{fatal}"))

    def on_finished(self, e: ev.Finished) -> Line:
        return Line("info", Text(
            f"run finished ({e.reason}) at step {e.step:,}: loss {loss(e.loss)}, val loss {loss(e.val_loss)}"
            f"{metrics(e.metrics)}, {duration(e.elapsed_s)}, {e.tokens_seen:,} tokens"))


def metrics(values: dict[str, float]) -> str:
    """A task's own measures after the losses: ``, train accuracy 91.2 %, val accuracy 90.0 %``."""
    shown = [f"{name.replace('_', ' ')} {value:.1%}" if name.endswith("accuracy") else
             f"{name.replace('_', ' ')} {value:.3f}" for name, value in values.items()]
    return "".join(f", {s}" for s in shown)


def option_value(value) -> str:
    """An option's value as a person reads it: ``default`` when unset, a list as its items."""
    if value is None:
        return "default"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return str(value)


_LINES = _EventLines()


def event_line(event: ev.Event) -> Line | None:
    """The line an event gets in the CLI's output and the console's log, or None (steps)."""
    return _LINES.handle(event)

"""Event log: engine samples, evals, checkpoint saves/restores, warnings, errors (HH:MM:SS)."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import RichLog

from gptmini import events as ev
from gptmini_tui import fmt

LEVEL_STYLE = {
    "info": "",
    "eval": "cyan",
    "sample": "green",
    "save": "magenta",
    "warning": "yellow",
    "error": "bold red",
    "state": "dim",
}


class EventLog(RichLog):
    DEFAULT_CSS = """
    EventLog { height: 1fr; background: $surface; scrollbar-size-vertical: 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=2000, wrap=True, markup=False, highlight=False, auto_scroll=True, **kwargs)
        self.entries: list[tuple[float, str, str]] = []  # (time, level, text) -- tests read this

    def add(self, text: str | Text, level: str = "info", when: float | None = None) -> None:
        when = time.time() if when is None else when
        self.entries.append((when, level, text.plain if isinstance(text, Text) else text))
        if len(self.entries) > 4000:
            del self.entries[:2000]
        line = Text(no_wrap=False)
        line.append(fmt.clock(when), style="dim")
        line.append(" ")
        tag = {"warning": "warn ", "error": "ERROR", "eval": "eval ", "sample": "sample", "save": "save "}.get(level)
        if tag:
            line.append(tag.strip() + " ", style=LEVEL_STYLE.get(level, ""))
        if isinstance(text, Text):
            line.append_text(text)
        else:
            line.append(text, style=LEVEL_STYLE.get(level, "") if level in ("error", "warning") else "")
        self.write(line)

    def add_event(self, event: ev.Event) -> None:
        """Log one engine event (Step events are never logged: the counters show them)."""
        t = getattr(event, "time", None)
        if isinstance(event, ev.RunStarted):
            resumed = f", resumed from {event.resumed_from}" if event.resumed_from else ""
            self.add(
                f"run {event.run_name} started: {fmt.human_count(event.n_params)} params on {event.device} "
                f"{event.dtype}; {event.corpus}: {event.train_tokens:,} train / {event.val_tokens:,} val tokens "
                f"({event.tokenizer}); {event.epochs} epochs × {event.batches_per_epoch} steps{resumed}",
                "info",
                t,
            )
        elif isinstance(event, ev.Eval):
            best = "  ★ best" if event.best else ""
            train = f"train {fmt.loss(event.train_loss)}  " if event.train_loss is not None else ""
            self.add(
                f"step {event.step:,}: {train}val {fmt.loss(event.val_loss)}  "
                f"ppl {fmt.perplexity(event.val_loss)}{best}",
                "eval",
                t,
            )
        elif isinstance(event, ev.Sample):
            body = Text(f"step {event.step:,}: ")
            body.append(event.prompt, style="bold")
            body.append(event.text)
            self.add(body, "sample", t)
        elif isinstance(event, ev.CheckpointSaved):
            best = " ★ best" if event.best else ""
            self.add(
                f"checkpoint saved at step {event.step:,} ({event.reason}{best}, {event.seconds:.2f}s): {event.path}",
                "save",
                t,
            )
        elif isinstance(event, ev.CheckpointRestored):
            self.add(f"restored step {event.step:,} (epoch {event.epoch}) from {event.path}", "save", t)
        elif isinstance(event, ev.Warning):
            self.add(event.message, "warning", t)
        elif isinstance(event, ev.Error):
            fatal = " (run stopped)" if event.fatal else ""
            self.add(f"[{event.error_kind}] {event.message}{fatal}", "error", t)
        elif isinstance(event, ev.Finished):
            self.add(
                f"run finished ({event.reason}) at step {event.step:,}: loss {fmt.loss(event.loss)}, "
                f"val {fmt.loss(event.val_loss)}, {fmt.duration(event.elapsed_s)}, {event.tokens_seen:,} tokens",
                "info",
                t,
            )
        elif isinstance(event, ev.DataProgress):
            if event.done_bytes >= event.total_bytes:
                how = "tokens from the cache" if event.from_cache else f"tokenised in {event.elapsed_s:.1f} s"
                self.add(f"{event.label}: {how}", "info", t)
        elif isinstance(event, ev.StateChanged):
            self.add(f"state → {event.state} (step {event.step:,})", "state", t)

"""Event log: engine samples, evals, checkpoint saves/restores, warnings, errors (HH:MM:SS)."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import RichLog

from gptmini import events as ev
from gptmini import fmt
from gptmini.events import RunState

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
        tag = {"warning": "warn", "error": "ERROR"}.get(level)
        if tag:
            line.append(tag + " ", style=LEVEL_STYLE[level])
        start = len(line)
        line.append_text(text if isinstance(text, Text) else Text(text))
        if level in ("error", "warning", "state"):
            line.stylize(LEVEL_STYLE[level], start)
        self.write(line)

    def add_event(self, event: ev.Event) -> None:
        """Log one engine event in its line (``gptmini.fmt.event_line``, as the CLI prints it); running and
        paused are left to the state line (a pause is not news)."""
        if isinstance(event, ev.StateChanged) and event.state in (RunState.RUNNING, RunState.PAUSED):
            return
        line = fmt.event_line(event)
        if line is not None:
            self.add(line.text, line.level, getattr(event, "time", None))

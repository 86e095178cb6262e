"""Samples: the sample the engine prints after each evaluation, newest first -- the run going from
"Asdfjkl" to sentences, kept instead of scrolling away in the log.

Each entry says the step, the tokens seen, the validation loss just before it and the strategy. A
restore does not delete the entries after the restored step: it marks them (that stretch of the run
was undone). The list is drawn as one text, at most once per UI tick, and shows the newest ``SHOWN``.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from gptmini import fmt

SHOWN = 400


class SamplesPanel(VerticalScroll):
    DEFAULT_CSS = """
    SamplesPanel { height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }
    SamplesPanel #samples-text { height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(can_focus=True, **kwargs)
        self.body = Static(Text("no samples yet: the engine writes one after each evaluation", style="dim"),
                           id="samples-text")
        self.version = -1  # the record's samples_version last shown
        self.count = 0

    def compose(self) -> ComposeResult:
        yield self.body

    def show(self, entries: list, version: int) -> None:
        """Draw ``entries`` (oldest first) if they changed since the last call."""
        if version == self.version:
            return
        self.version, self.count = version, len(entries)
        if not entries:
            self.body.update(Text("no samples yet: the engine writes one after each evaluation", style="dim"))
            return
        out = Text()
        for entry in reversed(entries[-SHOWN:]):
            head = (f"step {entry.step:,} · {fmt.human_count(entry.tokens_seen)} tokens · "
                    f"val {fmt.loss(entry.val_loss)} · {entry.strategy}")
            style = "dim strike" if entry.undone else ""
            out.append(head, style="bold cyan" if not entry.undone else "dim")
            if entry.undone:
                out.append("  undone by a restore", style="italic yellow")
            out.append("\n")
            out.append(entry.prompt, style=f"bold {style}".strip())
            out.append(entry.text.replace("\n", "⏎"), style=style)
            out.append("\n\n")
        if len(entries) > SHOWN:
            out.append(f"… {len(entries) - SHOWN:,} older samples", style="dim")
        self.body.update(out)

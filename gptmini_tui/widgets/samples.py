"""Samples: the sample the engine prints after each evaluation, newest first -- the run going from
"Asdfjkl" to sentences, kept instead of scrolling away in the log.

Each evaluation's entries sit under one heading: the step, the tokens seen, the validation loss just
before them and the strategy. A fine-tuning run writes a few fixed validation examples each time, each
beside what it should have been: an instruction with its reference answer and the model's answer, a text
with its predicted and true labels, so the answers can be watched improving. A restore does not delete
the entries after the restored step: it marks them (that stretch of the run was undone). The list is
drawn as one text, at most once per UI tick, and shows the newest ``SHOWN``.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from gptmini import fmt
from gptmini_tui.task_mode import TaskMode

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
        self.mode = TaskMode()

    def compose(self) -> ComposeResult:
        yield self.body

    def set_mode(self, mode: TaskMode) -> None:
        self.mode = mode
        self.version = -1  # drawn again at the next ``show``

    def show(self, entries: list, version: int) -> None:
        """Draw ``entries`` (oldest first) if they changed since the last call."""
        if version == self.version:
            return
        self.version, self.count = version, len(entries)
        if not entries:
            self.body.update(Text("no samples yet: the engine writes one after each evaluation", style="dim"))
            return
        out = Text()
        groups: list[list] = []  # the entries of one evaluation (consecutive, same step), oldest first
        for entry in entries[-SHOWN:]:
            if groups and groups[-1][0].step == entry.step and groups[-1][0].undone == entry.undone:
                groups[-1].append(entry)
            else:
                groups.append([entry])
        for group in reversed(groups):
            first = group[0]
            style = "dim strike" if first.undone else ""
            out.append(self._heading(first), style="bold cyan" if not first.undone else "dim")
            if first.undone:
                out.append("  undone by a restore", style="italic yellow")
            out.append("\n")
            for entry in group:
                if entry.reference is None:  # a continuation of the prompt
                    out.append(entry.prompt, style=f"bold {style}".strip())
                    out.append(entry.text.replace("\n", "⏎"), style=style)
                    out.append("\n")
                else:
                    self._example(out, entry, style)
            out.append("\n")
        if len(entries) > SHOWN:
            out.append(f"… {len(entries) - SHOWN:,} older samples", style="dim")
        self.body.update(out)

    def _heading(self, entry) -> str:
        head = f"step {entry.step:,} · {fmt.human_count(entry.tokens_seen)} tokens · val {fmt.loss(entry.val_loss)}"
        return head if self.mode.classify else f"{head} · {entry.strategy}"

    def _example(self, out: Text, entry, style: str) -> None:
        """A validation example: an instruction with its reference and the model's answer, or a text with the
        label predicted (and its probability) and the true one."""
        out.append("▸ ", style="dim")
        out.append(_indented(entry.prompt), style=f"bold {style}".strip())
        out.append("\n")
        if self.mode.classify:
            right = entry.text.rsplit(" (", 1)[0] == entry.reference
            out.append("  ✓ " if right else "  ✗ ", style=style or ("green" if right else "red"))
            out.append(entry.text, style=style)
            out.append(" · true ", style="dim")
            out.append(entry.reference, style=style)
        else:
            out.append("  reference  ", style="dim")
            out.append(_indented(entry.reference, 13), style=style or "green")
            out.append("\n  answer     ", style="dim")
            out.append(_indented(entry.text, 13) or "(nothing)", style=style)
        out.append("\n")


def _indented(text: str, width: int = 2) -> str:
    """``text`` with its later lines under its first (``width`` columns in)."""
    return text.replace("\n", "\n" + " " * width)

"""The playground's transcript entries: a reply streamed from the model (a continuation of a prompt, or an
answer to an instruction), and a classifier's verdict on a text (each label's probability as bars)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from gptmini_tui.widgets.probs import LabelProbability, label_bars

ENTRY_CSS = """
{name} {{ height: auto; margin: 0 0 1 0; padding: 0 1; border-left: thick $primary 50%; }}
{name}.-done {{ border-left: thick $success 60%; }}
{name}.-stopped {{ border-left: thick $warning 70%; }}
{name}.-error {{ border-left: thick $error; }}
"""


class Reply(Static):
    """One reply: a header line (strategy, params, weights' step) and the text.

    An answer to an instruction (``formatted``: the prompt the model read, the template filled in) shows the
    instruction, the answer under it, and whether it ended at end-of-text or at the most tokens allowed;
    ``show_formatted`` shows the whole formatted prompt instead of the instruction.
    """

    DEFAULT_CSS = ENTRY_CSS.format(name="Reply")

    def __init__(self, reply_id: int, prompt: str, label: str, formatted: str | None = None, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.reply_id = reply_id
        self.prompt = prompt
        self.formatted = formatted
        self.show_formatted = False
        self.label = label
        self.weights_step: int | None = None
        self.text = ""
        self.n_tokens = 0
        self.status = "waiting…"
        self.finished = False
        self.reason: str | None = None
        self.at_end: bool | None = None  # an answer: it ended at end-of-text (False: at the token limit)
        self._show()

    def start(self, label: str, weights_step: int | None) -> None:
        self.label = label
        self.weights_step = weights_step
        self.status = "generating…"
        self._show()

    def progress(self, text: str, n_tokens: int) -> None:
        self.text = text
        self.n_tokens = n_tokens
        self._show()

    def finish(self, text: str, n_tokens: int, seconds: float, reason: str, error: str | None,
               at_end: bool | None = None) -> None:
        self.text = text
        self.n_tokens = n_tokens
        self.finished = True
        self.reason = reason
        self.at_end = at_end
        rate = f", {n_tokens / seconds:.0f} tok/s" if seconds > 0 and n_tokens else ""
        if reason == "error":
            self.status = f"error: {error}"
        elif reason == "stopped":
            self.status = f"stopped after {n_tokens} tokens"
        else:
            self.status = f"{n_tokens} tokens{rate}"
            if at_end is not None:
                self.status += " · end-of-text" if at_end else " · token limit reached"
        self.add_class({"done": "-done", "stopped": "-stopped"}.get(reason, "-error"))
        self._show()

    def set_show_formatted(self, show: bool) -> None:
        if self.formatted is not None and show != self.show_formatted:
            self.show_formatted = show
            self._show()

    def _show(self) -> None:
        t = Text()
        t.append(self.label, style="bold cyan")
        if self.weights_step is not None:
            t.append(f" · weights @ step {self.weights_step:,}", style="dim")
        t.append(f" · {self.status}", style="red" if self.reason == "error" else "dim")
        t.append("\n")
        if self.formatted is None:  # a continuation of the prompt
            t.append(self.prompt, style="bold")
        elif self.show_formatted:  # the very text the model continued (it ends where the answer begins)
            t.append(self.formatted, style="italic")
        else:
            t.append(self.prompt, style="bold")
            t.append("\n")
        t.append(self.text)
        if not self.finished:
            t.append("▌", style="dim")
        self.update(t)


class Verdict(Static):
    """A classifier's verdict on one text: the text, then each label's probability as a bar."""

    DEFAULT_CSS = ENTRY_CSS.format(name="Verdict")

    def __init__(self, reply_id: int, text: str, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.reply_id = reply_id
        self.text = text
        self.rows: list[LabelProbability] = []
        self.weights_step: int | None = None
        self.status = "classifying…"
        self.finished = False
        self.reason: str | None = None
        self._show()

    @property
    def best(self) -> LabelProbability | None:
        return max(self.rows, key=lambda r: r.prob) if self.rows else None

    def finish(self, rows: list[LabelProbability], weights_step: int | None, error: str | None) -> None:
        self.rows = list(rows)
        self.weights_step = weights_step
        self.finished = True
        self.reason = "error" if error else "done"
        best = self.best
        self.status = f"error: {error}" if error else f"{best.label} ({100 * best.prob:.0f}%)"
        self.add_class("-error" if error else "-done")
        self._show()

    def on_resize(self) -> None:
        self._show()

    def _show(self) -> None:
        t = Text()
        t.append("classify", style="bold cyan")
        if self.weights_step is not None:
            t.append(f" · weights @ step {self.weights_step:,}", style="dim")
        t.append(f" · {self.status}", style="red" if self.reason == "error" else "dim")
        t.append("\n")
        t.append(self.text, style="bold")
        if self.rows:
            t.append("\n")
            t.append_text(label_bars(self.rows, max(20, min(60, (self.size.width or 40) - 3))))
        self.update(t)

"""Playground: prompt input, streamed replies (one block per reply), strategy line.

The widget only displays; the app runs generation in a thread worker and
feeds replies through ``ReplyStarted`` / ``ReplyProgress`` / ``ReplyFinished``.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Static


class Reply(Static):
    """One reply: a header line (strategy, params, weights' step) and the text."""

    DEFAULT_CSS = """
    Reply { height: auto; margin: 0 0 1 0; padding: 0 1; border-left: thick $primary 50%; }
    Reply.-done { border-left: thick $success 60%; }
    Reply.-stopped { border-left: thick $warning 70%; }
    Reply.-error { border-left: thick $error; }
    """

    def __init__(self, reply_id: int, prompt: str, label: str, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.reply_id = reply_id
        self.prompt = prompt
        self.label = label
        self.weights_step: int | None = None
        self.text = ""
        self.n_tokens = 0
        self.status = "waiting…"
        self.finished = False
        self.reason: str | None = None
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

    def finish(self, text: str, n_tokens: int, seconds: float, reason: str, error: str | None) -> None:
        self.text = text
        self.n_tokens = n_tokens
        self.finished = True
        self.reason = reason
        rate = f", {n_tokens / seconds:.0f} tok/s" if seconds > 0 and n_tokens else ""
        if reason == "error":
            self.status = f"error: {error}"
        elif reason == "stopped":
            self.status = f"stopped after {n_tokens} tokens"
        else:
            self.status = f"{n_tokens} tokens{rate}"
        self.add_class({"done": "-done", "stopped": "-stopped"}.get(reason, "-error"))
        self._show()

    def _show(self) -> None:
        t = Text()
        t.append(self.label, style="bold cyan")
        if self.weights_step is not None:
            t.append(f" · weights @ step {self.weights_step:,}", style="dim")
        t.append(f" · {self.status}", style="red" if self.reason == "error" else "dim")
        t.append("\n")
        t.append(self.prompt, style="bold")
        t.append(self.text)
        if not self.finished:
            t.append("▌", style="dim")
        self.update(t)


class Playground(Vertical):
    DEFAULT_CSS = """
    Playground { height: 1fr; }
    Playground #gen-status { height: 1; padding: 0 1; background: $boost; }
    Playground #transcript { height: 1fr; padding: 0 0; scrollbar-size-vertical: 1; }
    Playground #transcript-hint { color: $text-muted; padding: 0 1; }
    Playground #prompt { height: 3; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.status = Static("", id="gen-status")
        self.transcript = VerticalScroll(id="transcript", can_focus=True)
        self.prompt_input = Input(placeholder="prompt — Enter generates, Esc leaves", id="prompt")
        self._replies: dict[int, Reply] = {}

    def compose(self) -> ComposeResult:
        yield self.status
        with self.transcript:
            yield Static(
                "Type a prompt below (i or / to focus it, Enter to generate). "
                "1-4 pick greedy / temperature / top-k / top-p, c compares them all, x stops.",
                id="transcript-hint",
            )
        yield self.prompt_input

    def set_status(self, text: Text | str) -> None:
        self.status.update(text, layout=False)

    def add_reply(self, reply_id: int, prompt: str, label: str) -> Reply:
        reply = Reply(reply_id, prompt, label, id=f"reply-{reply_id}")
        transcript = self.transcript
        for hint in self.query("#transcript-hint"):
            hint.remove()
        transcript.mount(reply)
        self._replies[reply_id] = reply
        # keep the transcript bounded
        if len(self._replies) > 60:
            for old_id in sorted(self._replies)[: len(self._replies) - 60]:
                self._replies.pop(old_id).remove()
        transcript.scroll_end(animate=False)
        return reply

    def get_reply(self, reply_id: int) -> Reply | None:
        return self._replies.get(reply_id)

    @property
    def replies(self) -> list[Reply]:
        return [self._replies[k] for k in sorted(self._replies)]

    def follow(self) -> None:
        """Keep the newest text in view unless the user scrolled up to read."""
        t = self.transcript
        if t.max_scroll_y - t.scroll_y <= 4:
            t.scroll_end(animate=False)

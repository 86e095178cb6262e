"""A question with a few answers, each on a button and a key.

``ConfirmScreen(title, body)`` is a yes/no question (dismisses with "yes" or
"no"); pass ``choices`` for more answers: ``[(id, label, key), ...]``. Escape
always answers the first choice (the safe one).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import Key
from textual.screen import ModalScreen
from textual.widgets import Button, Static

YES_NO = [("no", "No", "n"), ("yes", "Yes", "y")]


class ConfirmScreen(ModalScreen[str]):
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > #dialog {
        width: 72; max-width: 100%; height: auto; padding: 1 2;
        border: round $warning; background: $surface;
    }
    ConfirmScreen #title { text-style: bold; margin-bottom: 1; width: 100%; }
    ConfirmScreen #body { width: 100%; }
    ConfirmScreen #buttons { height: auto; width: 100%; margin-top: 1; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 1; width: auto; }
    """

    def __init__(self, title: str, body: str, choices: list[tuple[str, str, str]] | None = None) -> None:
        super().__init__()
        self._title = title
        self._body = body
        self.choices = choices or YES_NO

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self._title, id="title", markup=False)
            yield Static(self._body, id="body", markup=False)
            with Horizontal(id="buttons"):
                for i, (cid, label, key) in enumerate(self.choices):
                    variant = "default" if i == 0 else ("warning" if i == len(self.choices) - 1 else "primary")
                    yield Button(f"{label} ({key})", id=f"choice-{cid}", variant=variant, compact=True)

    def on_mount(self) -> None:
        self.query_one(f"#choice-{self.choices[0][0]}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(str(event.button.id).removeprefix("choice-"))

    def on_key(self, event: Key) -> None:
        if event.key == "escape":
            event.stop()
            self.dismiss(self.choices[0][0])
            return
        for cid, _label, key in self.choices:
            if event.key == key:
                event.stop()
                self.dismiss(cid)
                return

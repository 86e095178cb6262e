"""Key reference, generated from the app's bindings so it never drifts."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gptmini_tui.actions import binding_hint


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 84; max-width: 98%; height: auto; max-height: 95%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """

    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss_help", "Close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]], note: str = "") -> None:
        super().__init__()
        self.sections = sections
        self.note = note

    def compose(self) -> ComposeResult:
        with VerticalScroll() as vs:
            vs.border_title = "GPTMini keys"
            vs.border_subtitle = binding_hint(self.BINDINGS)
            yield Static(self._table(), id="help-table")

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True, min_width=8)
        table.add_column()
        for title, rows in self.sections:
            table.add_row(Text(title, style="bold underline"), "")
            for keys, desc in rows:
                table.add_row(keys, desc)
            table.add_row("", "")
        if self.note:
            table.add_row("", Text(self.note, style="dim"))
        return table

    def action_dismiss_help(self) -> None:
        self.dismiss(None)

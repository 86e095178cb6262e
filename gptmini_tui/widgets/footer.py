"""The main screen's footer: the action table's keys that fit, each whole, and the command palette's.

Textual's ``Footer`` lays one widget per key side by side and clips the row at the screen's edge, so
at 100 or 120 columns it ended in a cut word run into its palette key (``k/pq Q▏^p palettel``). This
footer is one line of text: the pinned entries (help, pause, quit), then, in the table's order, every
other entry that still fits whole, between separators; ``^p palette`` at the right. It re-renders that
line (no widgets to recompose) when the screen's bindings change: focus moves, or an action's
availability follows the run.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.widget import Widget

from gptmini_tui import actions
from gptmini_tui.actions import PALETTE_ENTRY, FooterEntry

SEPARATOR = " · "


def fit(entries: list[FooterEntry], width: int) -> list[FooterEntry]:
    """The entries that fit in ``width`` cells, in their order: the pinned ones first, then the others
    while they fit (one too long is skipped for a shorter one after it)."""
    chosen: set[FooterEntry] = set()
    used = -len(SEPARATOR)
    for entry in sorted(entries, key=lambda e: not e.pinned):  # stable: each kind stays in table order
        cost = len(SEPARATOR) + cell_len(entry.text)
        if used + cost <= width:
            chosen.add(entry)
            used += cost
    return [e for e in entries if e in chosen]


class KeyFooter(Widget):
    """``shown``: the entries on the line now (tests read it); a click on a key presses it."""

    COMPONENT_CLASSES = {"key-footer--key", "key-footer--label", "key-footer--separator"}
    DEFAULT_CSS = """
    KeyFooter { dock: bottom; height: 1; background: $footer-background; color: $footer-foreground; }
    KeyFooter > .key-footer--key { color: $footer-key-foreground; text-style: bold; }
    KeyFooter > .key-footer--label { color: $footer-description-foreground; }
    KeyFooter > .key-footer--separator { color: $text-muted; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shown: list[FooterEntry] = []
        self._keys_at: list[tuple[int, int, str]] = []  # (first cell, end cell, key) of each clickable part

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen) -> None:
        self.refresh()

    def render(self) -> Text:
        width = self.size.width
        screen = self.screen
        entries = actions.footer_entries(lambda a: screen.check_action(a.name, ()))
        palette = cell_len(PALETTE_ENTRY.text)
        self.shown = fit(entries, width - palette - len(SEPARATOR))
        line = Text(no_wrap=True, overflow="crop", end="")
        self._keys_at = []
        for i, entry in enumerate(self.shown):
            if i:
                line.append(SEPARATOR, self.get_component_rich_style("key-footer--separator"))
            self._append(line, entry)
        line.append(" " * max(1, width - line.cell_len - palette))
        self._append(line, PALETTE_ENTRY)
        return line

    def _append(self, line: Text, entry: FooterEntry) -> None:
        dim = Style(dim=not entry.enabled)
        key_style = self.get_component_rich_style("key-footer--key") + dim
        start = line.cell_len
        for i, text in enumerate(entry.key_texts):
            if i:
                line.append(" ")
            if len(entry.keys) == len(entry.key_texts):
                self._keys_at.append((line.cell_len, line.cell_len + cell_len(text), entry.keys[i]))
            line.append(text, key_style)
        line.append(" " + entry.label, self.get_component_rich_style("key-footer--label") + dim)
        if len(entry.keys) == 1:  # the label presses the key too
            self._keys_at[-1] = (start, line.cell_len, entry.keys[0])

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._keys_at:
            if start <= event.x < end:
                self.app.simulate_key(key)  # an unavailable key says why (MainScreen.on_key)
                return

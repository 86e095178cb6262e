"""The bottom tabs (playground, checkpoints, log): switching a tab moves focus into its pane."""

from __future__ import annotations

from textual.widget import Widget
from textual.widgets import TabbedContent, Tabs


class Panels(TabbedContent):
    ORDER = ("tab-play", "tab-ckpt", "tab-runs", "tab-samples", "tab-log")

    def __init__(self, **kwargs) -> None:
        super().__init__(initial=self.ORDER[0], **kwargs)
        self.focus_targets: dict[str, Widget] = {}  # pane id -> the widget that gets focus when it shows

    def next(self) -> None:
        i = self.ORDER.index(self.active) if self.active in self.ORDER else 0
        self.show(self.ORDER[(i + 1) % len(self.ORDER)])

    def show(self, pane: str, focus: Widget | None = None) -> None:
        """Show ``pane`` and move focus into it (to ``focus``, or the pane's own target).

        Focus must move with the pane: a focused widget left in a hidden pane hands focus to a sibling,
        and TabbedContent follows focus back.
        """
        target = focus or self.focus_targets[pane]
        if self.active == pane:
            target.focus()
            return
        # Park focus on the (always visible) tab bar while the panes swap. Synchronously: Widget.focus()
        # only queues the change, and a layout pass that runs first finds the focused widget hidden and
        # hands focus to a sibling in the old pane, which switched the tabs straight back.
        tab_bar = self.query_one(Tabs)
        self.screen.set_focus(tab_bar, scroll_visible=False)
        self.active = pane
        self.call_after_refresh(self._focus_shown, pane, target)

    def _focus_shown(self, pane: str, target: Widget) -> None:
        # Two quick presses of ``v`` queue two of these; by the time the first runs its pane is hidden
        # again, and focusing into it would make TabbedContent follow focus back there.
        if self.active == pane:
            target.focus()

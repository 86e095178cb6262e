"""Checkpoints of the current run: DataTable + Save / Restore buttons.

The panel lists the run's checkpoints itself: ``refresh_listing()`` reads the manifests on a worker
thread (through the ``lister`` it was given, ``RunSession.list_checkpoints``) and shows the result;
``Listed`` then bubbles up so the screen can act on what is new.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Static

from gptmini import fmt
from gptmini_tui.actions import key


class CheckpointTable(DataTable):
    DEFAULT_CSS = """
    CheckpointTable { height: 1fr; }
    """


class CheckpointsPanel(Vertical):
    DEFAULT_CSS = """
    CheckpointsPanel { height: 1fr; }
    CheckpointsPanel #ckpt-buttons { height: auto; padding: 0 0; }
    CheckpointsPanel #ckpt-buttons Button { min-width: 12; margin: 0 1 0 0; }
    CheckpointsPanel #ckpt-note { width: 1fr; padding: 0 1; color: $text-muted; content-align: left middle; height: 3; }
    CheckpointsPanel #ckpt-empty { color: $text-muted; padding: 0 1; height: auto; }
    """

    @dataclass
    class Listed(Message):
        """A listing finished (``infos`` oldest first, or ``error``)."""

        infos: list = field(default_factory=list)
        error: str | None = None

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, CheckpointsPanel.Listed)

    def __init__(self, lister: Callable[[], list] = list, clock=time.time, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lister = lister
        self.clock = clock
        self.infos: list = []
        self._generation = 0  # listings from before clear() are dropped
        self.table = CheckpointTable(id="ckpt-table", cursor_type="row", zebra_stripes=True)
        self.save_button = Button(f"Save  {key('save')}", id="save-btn", variant="primary", compact=True,
                                  action="screen.save")
        self.restore_button = Button(f"Restore  {key('restore')}", id="restore-btn", variant="warning", compact=True,
                                     action="screen.restore")
        self.note = Static("", id="ckpt-note")
        self.empty = Static(f"no checkpoints yet — press {key('save')} to save one", id="ckpt-empty")

    def compose(self) -> ComposeResult:
        with Horizontal(id="ckpt-buttons"):
            yield self.save_button
            yield self.restore_button
            yield self.note
        yield self.empty
        yield self.table

    def on_mount(self) -> None:
        table = self.table
        table.add_column("", key="mark", width=3)
        table.add_column("step", key="step")
        table.add_column("epoch", key="epoch")
        table.add_column("val loss", key="val")
        table.add_column("train", key="train")
        table.add_column("age", key="age")
        table.add_column("size", key="size")
        table.display = False
        self.set_interval(5.0, self.refresh_ages)

    def refresh_listing(self) -> None:
        """List the checkpoints again (on a worker thread)."""
        self._list(self._generation)

    @work(thread=True, group="ckpt-list", exit_on_error=False)
    def _list(self, generation: int) -> None:
        try:
            infos = self.lister()
        except Exception as exc:  # a folder that vanished, permissions: say so, keep the old listing
            self.post_message(self.Listed([], f"cannot list checkpoints: {exc}"))
            return
        if generation == self._generation:
            self.post_message(self.Listed(infos))

    @on(Listed)
    def _listed(self, message: Listed) -> None:
        if message.error is None:
            self.set_infos(message.infos)

    def clear(self) -> None:
        """A new run: nothing listed, and listings still running for the old run are dropped."""
        self._generation += 1
        self.set_infos([])

    def set_controls_enabled(self, enabled: bool, reason: str = "") -> None:
        for btn in (self.save_button, self.restore_button):
            btn.disabled = not enabled
            btn.tooltip = reason or None
        self.note.update(reason)

    def set_infos(self, infos: list) -> None:
        """Show a ``list_checkpoints`` result (oldest first), newest on top."""
        table = self.table
        infos = sorted(infos, key=lambda i: i.step, reverse=True)
        names_before = [i.name for i in self.infos]
        if [i.name for i in infos] == names_before and all(
            (a.is_latest, a.is_best, a.val_loss) == (b.is_latest, b.is_best, b.val_loss)
            for a, b in zip(infos, self.infos)
        ):
            self.infos = infos
            self.refresh_ages()
            return
        selected = self.selected_info()
        self.infos = infos
        table.clear()
        now = self.clock()
        for info in infos:
            table.add_row(*self._cells(info, now), key=info.name)
        table.display = bool(infos)
        self.empty.display = not infos
        if selected is not None:
            for row, info in enumerate(infos):
                if info.name == selected.name:
                    table.move_cursor(row=row)
                    break

    def _cells(self, info, now: float) -> list:
        mark = Text()
        if info.is_best:
            mark.append("★", style="bold yellow")
        if info.is_latest:
            mark.append("●", style="bold green")
        if info.error:
            mark = Text("!", style="bold red")
        epoch = fmt.epochs(info.epochs_done if info.epochs_done is not None else info.epoch)
        return [
            mark,
            Text(f"{info.step:,}", justify="right"),
            Text(epoch, justify="right"),
            Text(fmt.loss(info.val_loss), justify="right"),
            Text(fmt.loss(info.train_loss), justify="right"),
            Text(fmt.age(info.mtime, now), justify="right"),
            Text(fmt.human_bytes(info.size_bytes), justify="right"),
        ]

    def refresh_ages(self) -> None:
        if not self.infos:
            return
        table = self.table
        now = self.clock()
        for info in self.infos:
            try:
                table.update_cell(info.name, "age", Text(fmt.age(info.mtime, now), justify="right"))
            except Exception:
                pass

    def restorable(self):
        """``(info, None)`` for the highlighted checkpoint, or ``(None, why it cannot be restored)``."""
        info = self.selected_info()
        if info is None:
            return None, f"no checkpoint to restore yet ({key('save')} saves one)"
        if info.error:
            return None, f"{info.name} is damaged: {info.error}"
        return info, None

    def selected_info(self):
        if not self.infos:
            return None
        table = self.table
        row = table.cursor_row
        if row is None or not 0 <= row < len(self.infos):
            return None
        return self.infos[row]


def restore_question(info, unsaved: int, current_step: int | None) -> str:
    """What restoring ``info`` into the running trainer will do, for the confirmation."""
    return (
        f"Load {info.name} (step {info.step:,}, val loss {fmt.loss(info.val_loss)}) into the running trainer?\n"
        f"Training continues from step {info.step:,}"
        + (f"; the plot drops everything after it (now at step {current_step:,})." if current_step else ".")
        + (f"\n{unsaved} step(s) since the last save will be lost." if unsaved else "")
    )

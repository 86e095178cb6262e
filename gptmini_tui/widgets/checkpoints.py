"""Checkpoints of the current run: DataTable + Save / Restore buttons."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Static

from gptmini_tui import fmt


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

    def __init__(self, clock=time.time, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.infos: list = []
        self.run_dir: str | None = None
        self.tokens_per_epoch: int | None = None  # from RunStarted: shows epochs as a fraction
        self.table = CheckpointTable(id="ckpt-table", cursor_type="row", zebra_stripes=True)
        self.save_button = Button("Save  s", id="save-btn", variant="primary", compact=True)
        self.restore_button = Button("Restore  r", id="restore-btn", variant="warning", compact=True)
        self.note = Static("", id="ckpt-note")
        self.empty = Static("no checkpoints yet — press s to save one", id="ckpt-empty")

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
        if getattr(info, "error", None):
            mark = Text("!", style="bold red")
        if getattr(info, "epochs_done", None) is not None:
            epoch = f"{info.epochs_done:.2f}"  # epochs completed, with the current one's fraction
        elif info.tokens_seen is not None and self.tokens_per_epoch:
            epoch = f"{info.tokens_seen / self.tokens_per_epoch:.2f}"
        elif info.epoch is not None:
            epoch = str(info.epoch)  # epochs completed (the manifest's 0-based position)
        else:
            epoch = "–"
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

    def selected_info(self):
        if not self.infos:
            return None
        table = self.table
        row = table.cursor_row
        if row is None or not 0 <= row < len(self.infos):
            return None
        return self.infos[row]

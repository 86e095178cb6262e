"""``gptmini train``: the engine with a rich progress bar, headless."""

from __future__ import annotations

import os
import sys
import threading
import traceback
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from gptmini import events as ev
from gptmini import fmt
from gptmini.cli.args import add_train_arguments, train_config_from_args
from gptmini.cli.signals import StopSignals
from gptmini.ckpt.layout import checkpoint_name
from gptmini.errors import GPTMiniError
from gptmini.events import RunState
from gptmini.paths import check_run_paths


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (headless)", description="Train a GPT from scratch.")
    add_train_arguments(p)
    p.set_defaults(run=run)


STOP_GRACE_S = 1.0  # after a stop request with nothing unsaved, the run may take this long to end by itself
LEVEL_PREFIX = {"warning": "[yellow]warning:[/] ", "error": "[red]error:[/] ", "save": "[green]✔[/] "}


class ConsoleReporter(ev.Handler):
    """Engine subscriber: a progress bar on a terminal (plain lines otherwise), and the line of each event."""

    def __init__(self, console: Console):
        self.console = console
        self.live = console.is_terminal
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.data_bar: Progress | None = None  # tokenising, before the run starts
        self.data_task: TaskID | None = None
        self.data_announced = False
        self.val: float | None = None
        self.errors: list[ev.Error] = []
        self.run_dir: str | None = None

    def __call__(self, e: ev.Event) -> None:
        self.handle(e)

    def unhandled(self, e: ev.Event) -> None:
        self._print_line(e)

    def _print_line(self, e: ev.Event) -> None:
        line = fmt.event_line(e)
        if line is not None:
            text = Text.from_markup(LEVEL_PREFIX.get(line.level, ""))
            text.append_text(line.text)
            self._print(text)

    def _print(self, text: Text | str) -> None:
        (self.progress.console if self.progress else self.console).print(text, highlight=False, soft_wrap=True)

    def on_state_changed(self, e: ev.StateChanged) -> None:
        pass  # the progress bar and the final lines tell it

    def on_eval(self, e: ev.Eval) -> None:
        self.val = e.val_loss
        self._print_line(e)

    def on_error(self, e: ev.Error) -> None:
        self.errors.append(e)
        if not e.fatal:  # fatal ones are printed last, on stderr
            self._print_line(e)

    def on_finished(self, e: ev.Finished) -> None:
        self.close()

    def close(self) -> None:
        """Take the bars off the screen (a run or the tokenising ended, perhaps stopped halfway)."""
        for bar in (self.data_bar, self.progress):
            if bar is not None:
                bar.stop()
        self.data_bar = None

    def on_data_progress(self, e: ev.DataProgress) -> None:
        """Tokenising a corpus the cache does not hold yet: a transient bar (or one line), then a summary."""
        if e.done_bytes < e.total_bytes:
            if self.data_bar is None and not self.data_announced:
                self.data_announced = True
                if not self.live:
                    self._print(f"tokenising {e.label} ...")
                    return
                self.data_bar = Progress(
                    TextColumn("{task.description}"), BarColumn(bar_width=24),
                    TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                    console=self.console, transient=True, refresh_per_second=4)
                self.data_task = self.data_bar.add_task(f"tokenising {e.label}", total=e.total_bytes)
                self.data_bar.start()
            if self.data_bar is not None:
                self.data_bar.update(self.data_task, completed=e.done_bytes)
            return
        if self.data_bar is not None:
            self.data_bar.stop()
            self.data_bar = None
        if not e.from_cache:
            self._print_line(e)

    def on_run_started(self, e: ev.RunStarted) -> None:
        self.run_dir = e.run_dir
        self._print_line(e)
        if self.live:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(bar_width=24),
                TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[stats]}"),
                TimeRemainingColumn(), console=self.console, transient=False, refresh_per_second=4)
            self.task = self.progress.add_task("starting", total=e.total_steps, completed=e.start_step, stats="")
            self.progress.start()

    def on_step(self, e: ev.Step) -> None:
        if self.progress is not None:
            self.progress.update(
                self.task, completed=e.step,
                description=f"epoch {e.epoch} batch {e.batch}/{e.batches_per_epoch}",
                stats=f"loss {fmt.loss(e.loss_smooth)} val {fmt.loss(self.val)} {fmt.human_count(e.tok_per_s, 1)} tok/s")


def run(args) -> int:
    cfg = train_config_from_args(args)
    check_run_paths(cfg)  # one line and exit 2 for an unusable --out / --data / --resume, before torch loads
    from gptmini.train.engine import (
        Trainer,  # torch: imported once the options are known to be valid
    )

    console = Console(stderr=False)
    trainer = Trainer(cfg)
    reporter = ConsoleReporter(console)
    if trainer_is_main():
        trainer.subscribe(reporter)

    def at_once() -> str:
        if trainer.unsaved:
            last = trainer.last_checkpoint
            return ("stopped at once, without saving the steps since the last checkpoint"
                    + (f" ({last})" if last else " (none was saved)"))
        return stop_report(trainer.step, trainer.last_checkpoint, cfg.resume)

    def first_words() -> str:
        if trainer.state in (RunState.CREATED, RunState.STARTING):
            return "stopping before training begins (press Ctrl+C again to stop at once)"
        return "stopping after this step, then saving it (press Ctrl+C again to stop at once, without saving)"

    signals = StopSignals(lambda: trainer.stop(save=True), first_words, at_once)
    # Training runs on its own thread: the main thread stays free to take a second Ctrl+C at once, even
    # while one step spends minutes inside a single torch operation.
    result: list[ev.Finished] = []
    thread = threading.Thread(target=lambda: result.append(trainer.run()), name="gptmini-train")
    with signals:
        thread.start()
        while thread.is_alive():
            thread.join(0.25)
            if (signals.count and signals.seconds_since_first() >= STOP_GRACE_S and not trainer.unsaved
                    and not trainer.winding_up):
                # stopped while loading, building, compiling, or right after a save: nothing to lose, and
                # what runs now (a compilation, a download) may not look at the stop for minutes
                signals.end_now(stop_report(trainer.step, trainer.last_checkpoint, cfg.resume))
    finished = result[0]
    for err in reporter.errors:
        if err.fatal:
            print(f"error: {err.message}", file=sys.stderr)
    if trainer.exception is not None and not isinstance(trainer.exception, GPTMiniError):
        traceback.print_exception(trainer.exception)
    if finished.reason == "error":
        return 2 if finished.step == 0 and reporter.run_dir is None else 1
    failed = [e for e in reporter.errors if e.error_kind == "checkpoint"]
    if failed and trainer_is_main():
        last = trainer.last_checkpoint
        print(f"error: {len(failed)} checkpoint save(s) failed; the last one on disk is "
              f"{last if last else 'none'}", file=sys.stderr)
        return 1
    if signals.count and trainer_is_main():
        console.print(stop_report(finished.step, trainer.last_checkpoint, cfg.resume), highlight=False,
                      soft_wrap=True)
    return 0


def stop_report(step: int, last: Path | None, resume: str | None) -> str:
    """The last words of a stopped run: the checkpoint it resumes from, or that nothing was saved."""
    if last is None:
        if resume:
            return f"stopped before training resumed; nothing new was saved\nresume with: gptmini train --resume {resume}"
        return "stopped before training began; nothing was saved" if step == 0 else \
            f"stopped at step {step}; nothing was saved"
    lost = "" if last.name == checkpoint_name(step) else f" (the steps after {last.name} were not saved)"
    return f"stopped at step {step}; checkpoint {last}{lost}\nresume with: gptmini train --resume {last.parent}"


def trainer_is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"

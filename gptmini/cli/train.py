"""``gptmini train``: the engine with a rich progress bar, headless."""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from gptmini import events as ev
from gptmini import fmt
from gptmini.cli.args import add_train_arguments, train_config_from_args
from gptmini.errors import GPTMiniError
from gptmini.paths import check_run_paths


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (headless)", description="Train a GPT from scratch.")
    add_train_arguments(p)
    p.set_defaults(run=run)


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
        if self.progress is not None:
            self.progress.stop()

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
    stops = 0

    def on_signal(signum, frame):
        nonlocal stops
        if signum == signal.SIGHUP:  # the terminal is gone (SSH dropped): nowhere left to print
            _silence_output()
            if stops:
                return
        stops += 1
        if stops == 1:
            trainer.stop(save=True)
            _say("stopping after this step, then saving it (press Ctrl+C again to stop at once, without saving)")
            return
        last = trainer.last_checkpoint
        _say("stopped at once, without saving the steps since the last checkpoint"
             + (f" ({last})" if last else " (none was saved)"))
        os._exit(128 + signum)  # the step in progress may run for minutes: do not wait for it

    stop_signals = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # under nohup, keep training
        stop_signals.append(signal.SIGHUP)
    old = {s: signal.signal(s, on_signal) for s in stop_signals}
    # Training runs on its own thread: the main thread stays free to take a second Ctrl+C at once, even
    # while one step spends minutes inside a single torch operation.
    result: list[ev.Finished] = []
    thread = threading.Thread(target=lambda: result.append(trainer.run()), name="gptmini-train")
    try:
        thread.start()
        while thread.is_alive():
            thread.join(0.25)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
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
    if stops and trainer_is_main():
        where = trainer.run_dir
        console.print(f"stopped at step {finished.step}; checkpoint saved in {where}\n"
                      f"resume with: gptmini train --resume {where}", highlight=False)
    return 0


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:  # a hung-up terminal
        pass


def _silence_output() -> None:
    """Point stdout and stderr at /dev/null: printing to a hung-up terminal fails with EIO."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def trainer_is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"

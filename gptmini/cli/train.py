"""``gptmini train``: the engine with a rich progress bar, headless."""

from __future__ import annotations

import signal
import sys
import threading
import traceback

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from gptmini import events as ev
from gptmini.cli.args import add_train_arguments, train_config_from_args
from gptmini.errors import GPTMiniError


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (headless)", description="Train a GPT from scratch.")
    add_train_arguments(p)
    p.set_defaults(run=run)


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


class ConsoleReporter:
    """Engine subscriber: progress bar on a terminal, plain lines otherwise."""

    def __init__(self, console: Console, quiet_rank: bool = False):
        self.console = console
        self.live = console.is_terminal
        self.progress: Progress | None = None
        self.task = None
        self.data_bar: Progress | None = None  # tokenising, before the run starts
        self.data_task = None
        self.data_announced = False
        self.val: float | None = None
        self.errors: list[ev.Error] = []
        self.last_saved: str | None = None
        self.run_dir: str | None = None

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.Step):
            self._step(e)
        elif isinstance(e, ev.RunStarted):
            self._started(e)
        elif isinstance(e, ev.DataProgress):
            self._data(e)
        elif isinstance(e, ev.Eval):
            self.val = e.val_loss
            mark = "  (best)" if e.best else ""
            self._print(f"[bold]step {e.step}[/] epoch {e.epoch}: train loss {_fmt(e.train_loss)}, "
                        f"val loss {e.val_loss:.3f}, perplexity {e.val_ppl:.1f}{mark}")
        elif isinstance(e, ev.Sample):
            text = e.text.replace("\n", " ")  # one line per sample, as in Raschka's generate_and_print_sample
            self._print(f"[dim]sample:[/] [cyan]{_escape(e.prompt)}[/]{_escape(text)}")
        elif isinstance(e, ev.CheckpointSaved):
            self.last_saved = e.path
            self._print(f"[green]checkpoint[/] {e.path} ({e.reason})")
        elif isinstance(e, ev.CheckpointRestored):
            self._print(f"[green]restored[/] {e.path} at step {e.step}")
        elif isinstance(e, ev.Warning):
            self._print(f"[yellow]warning:[/] {_escape(e.message)}")
        elif isinstance(e, ev.Error):
            self.errors.append(e)
            if not e.fatal:
                self._print(f"[red]error:[/] {_escape(e.message)}")
        elif isinstance(e, ev.Finished):
            if self.progress is not None:
                self.progress.stop()

    def _print(self, text: str) -> None:
        (self.progress.console if self.progress else self.console).print(text, highlight=False)

    def _data(self, e: ev.DataProgress) -> None:
        """Tokenising a corpus the cache does not hold yet: a transient bar (or one line), then a summary."""
        what = e.label
        if e.done_bytes < e.total_bytes:
            if self.data_bar is None and not self.data_announced:
                self.data_announced = True
                if not self.live:
                    self._print(f"tokenising {what} ...")
                    return
                self.data_bar = Progress(
                    TextColumn("{task.description}"), BarColumn(bar_width=24),
                    TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                    console=self.console, transient=True, refresh_per_second=4)
                self.data_task = self.data_bar.add_task(f"tokenising {what}", total=e.total_bytes)
                self.data_bar.start()
            if self.data_bar is not None:
                self.data_bar.update(self.data_task, completed=e.done_bytes)
            return
        if self.data_bar is not None:
            self.data_bar.stop()
            self.data_bar = None
        if not e.from_cache:
            rate = e.total_bytes / 1e6 / max(e.elapsed_s, 1e-9)
            self._print(f"tokenised {what} in {e.elapsed_s:.1f} s ({rate:.1f} MB/s); cached for the next run")

    def _started(self, e: ev.RunStarted) -> None:
        self.run_dir = e.run_dir
        mc = e.model_config
        self._print(
            f"[bold]{e.run_name}[/]: {e.n_params / 1e6:.2f} M params ({mc['n_layers']} layers, {mc['n_heads']} heads, "
            f"d_model {mc['d_model']}, context {mc['context_length']}) on {e.device} ({e.dtype})\n"
            f"corpus {e.corpus} ({e.corpus_bytes / 1e3:.0f} KB): {e.train_tokens:,} train / {e.val_tokens:,} val "
            f"{e.tokenizer} tokens; {e.batches_per_epoch} steps per epoch x {e.epochs} epochs = {e.total_steps} steps"
            + (f"; resumed at step {e.start_step}" if e.resumed_from else "")
            + f"\nrun folder: {e.run_dir}")
        if self.live:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(bar_width=24),
                TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[stats]}"),
                TimeRemainingColumn(), console=self.console, transient=False, refresh_per_second=4)
            self.task = self.progress.add_task("starting", total=e.total_steps, completed=e.start_step, stats="")
            self.progress.start()

    def _step(self, e: ev.Step) -> None:
        if self.progress is not None:
            self.progress.update(
                self.task, completed=e.step,
                description=f"epoch {e.epoch} batch {e.batch}/{e.batches_per_epoch}",
                stats=f"loss {e.loss_smooth:.3f} val {_fmt(self.val)} {e.tok_per_s:,.0f} tok/s")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def run(args) -> int:
    cfg = train_config_from_args(args)
    from gptmini.engine import Trainer  # torch: imported once the options are known to be valid

    console = Console(stderr=False)
    trainer = Trainer(cfg)
    reporter = ConsoleReporter(console)
    if trainer_is_main():
        trainer.subscribe(reporter)
    interrupted = threading.Event()

    def on_signal(signum, frame):
        if signum == signal.SIGHUP:  # the terminal is gone (SSH dropped): nowhere left to print
            _silence_output()
            if interrupted.is_set():
                return
        if interrupted.is_set():  # second Ctrl+C: give up at once
            raise KeyboardInterrupt
        interrupted.set()
        trainer.stop(save=True)

    stop_signals = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # under nohup, keep training
        stop_signals.append(signal.SIGHUP)
    old = {s: signal.signal(s, on_signal) for s in stop_signals}
    try:
        finished = trainer.run()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    for err in reporter.errors:
        if err.fatal:
            print(f"error: {err.message}", file=sys.stderr)
    if trainer.exception is not None and not isinstance(trainer.exception, GPTMiniError):
        traceback.print_exception(trainer.exception)
    if finished.reason == "error":
        return 2 if trainer.state == "error" and finished.step == 0 and reporter.run_dir is None else 1
    if interrupted.is_set() and trainer_is_main():
        where = trainer.run_dir
        console.print(f"stopped at step {finished.step}; checkpoint saved in {where}\n"
                      f"resume with: gptmini train --resume {where}", highlight=False)
    return 0


def _silence_output() -> None:
    """Point stdout and stderr at /dev/null: printing to a hung-up terminal fails with EIO."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def trainer_is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"

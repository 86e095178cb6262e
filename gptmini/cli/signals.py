"""Ctrl+C (SIGINT), SIGTERM and a hung-up terminal (SIGHUP) during a long command (``gptmini train``,
``gptmini prepare``).

The first asks the work to stop (``on_stop``) and says so; a second ends the process at once (``end_now``):
the temporary files of the writes in progress are removed (``tempfiles``), one last line says what exists,
and the process exits with 128 + the signal. A command may also end a stopped run at once itself, when
nothing would be lost (``end_now`` from its main thread).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from types import TracebackType

from gptmini import tempfiles


class StopSignals:
    def __init__(self, on_stop: Callable[[], None], first_words: Callable[[], str],
                 last_words: Callable[[], str]) -> None:
        self.on_stop = on_stop
        self.first_words = first_words  # said at the first signal
        self.last_words = last_words  # what exists, said when the process ends at once
        self.count = 0  # stop signals received (a hang-up after one is not counted)
        self.first_at: float | None = None  # time.monotonic() of the first
        self.signum = signal.SIGINT
        self._old: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        wanted = [signal.SIGINT, signal.SIGTERM]
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # under nohup, keep working
            wanted.append(signal.SIGHUP)
        self._old = {s: signal.signal(s, self._handle) for s in wanted}
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)

    def seconds_since_first(self) -> float:
        return 0.0 if self.first_at is None else time.monotonic() - self.first_at

    def _handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:  # the terminal is gone (SSH dropped): nowhere left to print
            silence_output()
            if self.count:
                return
        self.count += 1
        self.signum = signum
        if self.count == 1:
            self.first_at = time.monotonic()
            self.on_stop()
            say(self.first_words())
            return
        self.end_now(self.last_words(), to=sys.stderr, code=128 + signum)

    def end_now(self, words: str, *, to=None, code: int = 0) -> None:
        """Remove the temporary files of writes in progress, say ``words``, end the process with ``code``."""
        tempfiles.remove_all()
        say(words, to=to or sys.stdout)
        os._exit(code)  # a step or a compilation may run for minutes: do not wait for it


def say(text: str, *, to=None) -> None:
    try:
        print(text, file=to or sys.stderr, flush=True)
    except OSError:  # a hung-up terminal
        pass


def silence_output() -> None:
    """Point stdout and stderr at /dev/null: printing to a hung-up terminal fails with EIO."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)

"""Stop requests that reach long work in any phase: reading a corpus, tokenising it, downloading, evaluating.

Whoever owns a stop request (the engine's ``Trainer.stop``, ``gptmini prepare``'s Ctrl+C) runs the work inside
``stoppable(event)``; the long loops call ``check_stop()`` between two pieces of work (a block read, a chunk
tokenised, a chunk downloaded, a batch evaluated), which raises ``Stopped`` once the event is set. Outside any
``stoppable`` block ``check_stop()`` does nothing, so library code called on its own never stops halfway.

The scope is a ``contextvars`` variable: each thread has its own, so a stop reaches only the work of the
thread that asked for it to be stoppable.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator


class Stopped(Exception):
    """A stop was requested while long work ran: it ended early and wrote nothing (not a user's mistake)."""


_event: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("gptmini_stop", default=None)


@contextlib.contextmanager
def stoppable(event: threading.Event) -> Iterator[None]:
    """Make ``check_stop()`` in this thread raise ``Stopped`` once ``event`` is set."""
    token = _event.set(event)
    try:
        yield
    finally:
        _event.reset(token)


def stop_requested() -> bool:
    event = _event.get()
    return event is not None and event.is_set()


def check_stop() -> None:
    """Raise ``Stopped`` if this thread's work was asked to stop."""
    if stop_requested():
        raise Stopped

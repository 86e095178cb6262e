"""Requests from other threads to the training thread, served between two optimizer steps.

A caller gets a ``concurrent.futures.Future`` at once. While a loop is active, the request waits in
a queue that the training thread drains between steps; when no loop is active (before the run, after
it, or from the training thread itself), it is served in the caller's thread right away. When the run
ends, whatever is still queued fails, so no caller waits forever.
"""

from __future__ import annotations

import concurrent.futures as cf
import queue
import threading
from typing import Any, Callable

from gptmini.errors import GPTMiniError
from gptmini.train.threads import drain

Serve = Callable[[str, Any, cf.Future], None]


class Requests:
    def __init__(self, serve: Serve) -> None:
        self._serve = serve
        self._queue: queue.SimpleQueue[tuple[str, Any, cf.Future]] = queue.SimpleQueue()
        self.loop_active = threading.Event()
        self.loop_thread: threading.Thread | None = None

    def submit(self, kind: str, arg: Any) -> cf.Future:
        fut: cf.Future = cf.Future()
        if self.loop_active.is_set() and threading.current_thread() is not self.loop_thread:
            self._queue.put((kind, arg, fut))
        else:  # nobody is training right now: serve it here
            self._serve(kind, arg, fut)
        return fut

    def serve_waiting(self) -> None:
        """On the training thread, between two steps."""
        for kind, arg, fut in drain(self._queue):
            self._serve(kind, arg, fut)

    def fail_waiting(self) -> None:
        for _kind, _arg, fut in drain(self._queue):
            if fut.set_running_or_notify_cancel():
                fut.set_exception(GPTMiniError("training has ended"))

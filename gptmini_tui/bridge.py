"""Session listener: engine events become console messages.

``EngineBridge.__call__`` runs on the training thread (or the attach-mode poller), after the session
has recorded the event, so it only calls ``post_message`` (non-blocking, thread-safe). It never
touches widgets and never uses ``call_from_thread`` (which would block training until the UI ran).

Steps are coalesced twice: the bridge posts at most one step message per ``min_interval`` seconds
(the console redraws its counters once a second from the session's newest step anyway), and the
step message's ``can_replace`` collapses any that still queue up. The full loss history is in the
session's ``LossHistory``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from gptmini import events as ev
from gptmini_tui.messages import engine_message


class EngineBridge:
    def __init__(self, post: Callable[[Any], Any], min_interval: float = 1.0) -> None:
        self._post = post
        self.min_interval = min_interval
        self._last_step_post = 0.0

    def __call__(self, event: ev.Event) -> None:
        if type(event) is ev.Step:
            now = time.monotonic()
            if now - self._last_step_post < self.min_interval:
                return
            self._last_step_post = now
        self._post(engine_message(event))

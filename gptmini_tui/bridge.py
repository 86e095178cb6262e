"""Engine subscriber: turns engine events into app messages.

``EngineBridge.__call__`` runs on the training thread (or the attach-mode
poller), so it only appends to the loss history and calls ``post_message``
(non-blocking, thread-safe). It never touches widgets and never uses
``call_from_thread`` (which would block training until the UI ran).

Steps are coalesced twice: the bridge posts at most one ``StepProgress`` per
``min_interval`` seconds (the app passes its counter refresh period, 1 s; the UI
reads the newest step from ``latest_step`` on its refresh timer anyway), and ``StepProgress.can_replace`` collapses any
that still queue up. The full loss history goes into ``LossHistory``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from gptmini import events as ev
from gptmini_tui.history import LossHistory
from gptmini_tui.messages import EngineEvent, HistoryReset, StepProgress


class EngineBridge:
    def __init__(
        self,
        post: Callable[[Any], Any],
        history: LossHistory | None = None,
        min_interval: float = 0.5,
    ) -> None:
        self._post = post
        self.history = history if history is not None else LossHistory()
        self.min_interval = min_interval
        self.latest_step: ev.Step | None = None
        self.latest_eval: ev.Eval | None = None
        self.run_started: ev.RunStarted | None = None
        self.steps_seen = 0  # Step events received (all of them, not just posted)
        self._last_post = 0.0
        self._closed = False
        self.save_event = threading.Event()  # set on every CheckpointSaved (quit waits on it)
        self.last_saved: ev.CheckpointSaved | None = None

    def close(self) -> None:
        """Stop forwarding (the trainer may still emit a few events while it winds down)."""
        self._closed = True

    def __call__(self, event: ev.Event) -> None:
        if self._closed:
            return
        try:
            self._handle(event)
        except Exception:  # a subscriber must never break the training loop
            pass

    def _handle(self, event: ev.Event) -> None:
        h = self.history
        if isinstance(event, ev.Step):
            self.steps_seen += 1
            bpe = max(1, event.batches_per_epoch)
            epoch = (event.epoch - 1) + event.batch / bpe  # fractional, for the epochs x-axis
            h.add_step(event.step, event.tokens_seen, epoch, event.loss, event.loss_smooth)
            self.latest_step = event
            now = time.monotonic()
            if now - self._last_post >= self.min_interval:
                self._last_post = now
                self._post(StepProgress(event))
            return
        if isinstance(event, ev.Eval):
            epoch = float(event.epoch)
            last = self.latest_step
            if last is not None and last.step == event.step:
                epoch = (last.epoch - 1) + last.batch / max(1, last.batches_per_epoch)
            h.add_eval(event.step, event.tokens_seen, epoch, event.val_loss)
            self.latest_eval = event
        elif isinstance(event, ev.RunStarted):
            self.run_started = event
            if event.start_step == 0:
                h.clear()
            else:
                h.truncate_after(event.start_step)
            self.latest_step = None
        elif isinstance(event, ev.CheckpointRestored):
            # Everything after the restored step never happened for this run any more.
            h.truncate_after(event.step)
            last = self.latest_step
            if last is not None and last.step > event.step:
                self.latest_step = None
            le = self.latest_eval
            if le is not None and le.step > event.step:
                self.latest_eval = None
            self._post(HistoryReset(event.step))
        elif isinstance(event, ev.CheckpointSaved):
            self.last_saved = event
            self.save_event.set()
        self._post(EngineEvent(event))

"""``metrics.jsonl``: a line of JSON per event, written off the training thread.

``MetricsWriter`` is an engine subscriber: on the training thread it only puts
the event on a queue; a daemon thread serialises, writes and flushes, so a
slow disk never slows training. The thread wakes at most every ``interval``
seconds and writes everything waiting in one flush: a small model's hundreds
of steps a second cost a few wake-ups, not one per step. ``MetricsFollower``
tails the file from another process (the TUI's attach mode, a notebook).
"""

from __future__ import annotations

import json
import math
import queue
import threading
from pathlib import Path
from typing import Any

from gptmini.ckpt.layout import METRICS_FILE
from gptmini.events import Event, event_from_record

_ENCODER = json.JSONEncoder(separators=(",", ":"))  # one encoder, not one per json.dumps call


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


class MetricsWriter:
    """Append events to ``run_dir/metrics.jsonl`` from a background thread."""

    def __init__(self, run_dir: str | Path, interval: float = 0.2):
        self.path = Path(run_dir) / METRICS_FILE
        self.interval = interval
        self._closing = threading.Event()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._fh = self.path.open("a", encoding="utf-8")
        self._thread = threading.Thread(target=self._work, name="gptmini-metrics", daemon=True)
        self._thread.start()

    def __call__(self, event: Event) -> None:
        self._queue.put(event)

    def _work(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                break
            batch = [event]
            while True:  # write everything that is waiting, then flush once
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._write(batch)
                    return
                batch.append(nxt)
            self._write(batch)
            # let the next events gather (close() cuts the wait short)
            self._closing.wait(self.interval)

    def _write(self, events: list[Event]) -> None:
        lines = []
        for ev in events:
            rec = {k: _clean(v) for k, v in ev.to_record().items()}
            lines.append(_ENCODER.encode(rec) + "\n")
        try:
            self._fh.write("".join(lines))
            self._fh.flush()
        except (OSError, ValueError):
            pass  # a full disk must not kill training; checkpoints report their own errors

    def close(self) -> None:
        self._closing.set()
        self._queue.put(None)
        self._thread.join(timeout=10)
        try:
            self._fh.close()
        except OSError:
            pass


class MetricsFollower:
    """Read new events from a run's ``metrics.jsonl`` (only whole lines)."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / METRICS_FILE
        self._offset = 0
        self._partial = b""

    @property
    def offset(self) -> int:
        """Bytes of the file read so far."""
        return self._offset

    def poll(self, max_bytes: int = -1) -> list[Event]:
        """The events written since the last poll (at most about ``max_bytes`` of them: call again for more)."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read(max_bytes)
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # incomplete last line (still being written)
        events = []
        for line in lines:
            if not line.strip():
                continue
            try:
                ev = event_from_record(json.loads(line))
            except (ValueError, TypeError):
                continue
            if ev is not None:
                events.append(ev)
        return events

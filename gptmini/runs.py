"""Run folders side by side: find them, say what each is, load their curves, tell how two differ.

A run folder is what ``ckpt.layout.is_run_folder`` says (``gptmini train`` and the console write one). Reading one
never needs its lock: a run another process is training is read while it grows (``live``), through the
same ``MetricsFollower`` the console's attach mode uses, so a live run's curve keeps growing with a
cheap poll of what was appended.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptmini import events as ev
from gptmini.ckpt.layout import find_run_folders
from gptmini.fmt import option_value
from gptmini.history import LossHistory
from gptmini.metrics import METRICS_FILE, MetricsFollower

LIVE_WITHIN_S = 30.0  # a run whose metrics.jsonl grew this recently (and did not finish) counts as live


@dataclass
class RunSummary:
    path: Path
    name: str
    model: str  # "cpu-demo" or "4L 4H d128 ctx128"
    tokenizer: str
    corpus: str
    steps: int
    tokens: int
    best_val: float | None
    started: float | None  # wall clock of its first run_started
    updated: float  # wall clock of its last metrics line
    live: bool
    options: dict[str, Any] = field(default_factory=dict)  # config.json's train options and model shape


class _MetricsScan:
    """What a run's ``metrics.jsonl`` says so far, read incrementally: each call reads only what was
    appended since the last (the current run's file grows by megabytes; re-reading it would cost)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.last_step: dict[str, Any] | None = None
        self.started: dict[str, Any] | None = None
        self.best_val: float | None = None
        self.finished = False

    def update(self) -> None:
        try:
            with self.path.open("rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size < self.offset:  # rewritten: start over
                    self.__init__(self.path)
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # whole lines only; a line being written waits for the next call
        data = data[:end]
        self.offset += end
        if not data:
            return
        step = _last_record(data, "step")
        self.last_step = step or self.last_step
        self.started = self.started or _first_record(data, "run_started")
        ended = [m.start() for m in _event(b"finished").finditer(data)]
        began = [m.start() for m in _event(b"run_started").finditer(data)]
        if ended or began:  # finished, unless it was resumed after its last end
            self.finished = max(ended, default=-1) > max(began, default=-1)
        for match in _event(b"eval").finditer(data):
            record = _line_at(data, match.start())
            val = record.get("val_loss") if record else None
            if isinstance(val, (int, float)) and (self.best_val is None or val < self.best_val):
                self.best_val = val

    def summary(self, now: float) -> RunSummary:
        path = self.path.parent
        config = _read_json(path / "config.json")
        started = self.started or {}
        model = config.get("model", {}) or started.get("model_config", {})
        train = config.get("train", {})
        try:
            updated = self.path.stat().st_mtime
        except OSError:
            updated = 0.0
        step = self.last_step or {}
        return RunSummary(
            path=path, name=path.name, model=_model_name(train, model),
            tokenizer=(config.get("tokenizer") or {}).get("name") or started.get("tokenizer", "?"),
            corpus=(config.get("resolved") or {}).get("corpus") or started.get("corpus", "?"),
            steps=int(step.get("step", 0)), tokens=int(step.get("tokens_seen", 0)), best_val=self.best_val,
            started=started.get("time"), updated=updated, live=not self.finished and now - updated < LIVE_WITHIN_S,
            options={**{k: v for k, v in train.items() if k not in ("out", "run_name", "resume")},
                     **{f"model.{k}": v for k, v in model.items()}},
        )


def summarize(path: str | Path, now: float | None = None) -> RunSummary:
    """What a run is and how far it got, from its ``config.json`` and ``metrics.jsonl`` (read, not parsed
    whole: only the event lines that matter)."""
    scan = _MetricsScan(Path(path) / METRICS_FILE)
    scan.update()
    return scan.summary(time.time() if now is None else now)


def options_diff(a: RunSummary, b: RunSummary) -> list[str]:
    """``["lr 0.001 → 0.0005", ...]``: the options that differ between two runs (``a`` first)."""
    out = []
    for key in sorted(set(a.options) | set(b.options)):
        old, new = a.options.get(key), b.options.get(key)
        if old != new:
            out.append(f"{key.removeprefix('model.')} {option_value(old)} → {option_value(new)}")
    return out


class RunCurve:
    """One run's loss curve, read from its ``metrics.jsonl`` and kept up to date by ``poll``."""

    def __init__(self, path: str | Path) -> None:
        from gptmini.session import (
            RunRecord,  # the same record of events the console keeps of its own run
        )

        self.path = Path(path)
        self.history = LossHistory()
        self._record = RunRecord(self.history)
        self._follower = MetricsFollower(self.path)

    def poll(self) -> int:
        """Take in what the run wrote since the last poll; how many events that was. A long run's file is
        read a few megabytes at a time, so loading one never holds all of its events at once."""
        total = 0
        while True:
            before = self._follower.offset
            events = self._follower.poll(max_bytes=4 << 20)
            for event in events:
                if not isinstance(event, (ev.Sample, ev.DataProgress)):
                    self._record.handle(event)
            total += len(events)
            if self._follower.offset == before:
                return total

    @property
    def finished(self) -> bool:
        return self._record.state.ended


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _event(kind: bytes) -> re.Pattern[bytes]:
    return re.compile(rb'"event":\s*"' + kind + rb'"')


def _line_at(data: bytes, i: int) -> dict[str, Any] | None:
    """The JSON record on the line holding offset ``i`` (None: a line still being written)."""
    start = data.rfind(b"\n", 0, i) + 1
    stop = data.find(b"\n", i)
    try:
        return json.loads(data[start:stop if stop >= 0 else len(data)])
    except ValueError:
        return None


def _last_record(data: bytes, kind: str) -> dict[str, Any] | None:
    pattern, end = _event(kind.encode()), len(data)
    tail = max(0, end - 65536)
    while True:  # most runs end with a step: look at the tail first, then further back
        matches = list(pattern.finditer(data, tail, end))
        for match in reversed(matches):
            record = _line_at(data, match.start())
            if record is not None:
                return record
        if tail == 0:
            return None
        end, tail = tail, max(0, tail - 1 << 20)


def _first_record(data: bytes, kind: str) -> dict[str, Any] | None:
    match = _event(kind.encode()).search(data)
    return _line_at(data, match.start()) if match else None


def _model_name(train: dict[str, Any], model: dict[str, Any]) -> str:
    dims = [train.get(k) for k in ("n_layers", "n_heads", "d_model", "context")]
    if train.get("init_from"):
        return f"init {os.path.basename(str(train['init_from']))}"
    if any(d is not None for d in dims) or not train.get("preset"):
        return (f"{model.get('n_layers', '?')}L {model.get('n_heads', '?')}H d{model.get('d_model', '?')} "
                f"ctx{model.get('context_length', '?')}")
    return str(train["preset"])


class RunIndex:
    """The run folders under some roots, summarized; each run's metrics are read once, then only what is
    appended to them (a finished run costs nothing more, a live one what it wrote since)."""

    def __init__(self, *roots: str | Path) -> None:
        self.roots: list[Path] = [Path(r).expanduser() for r in roots]
        self._scans: dict[Path, _MetricsScan] = {}
        self._lock = threading.Lock()

    def add_root(self, root: str | Path) -> None:
        root = Path(root).expanduser()
        with self._lock:
            if root not in self.roots:
                self.roots.append(root)

    def refresh(self) -> list[RunSummary]:
        """Every run found now, oldest first (blocking: reads what the runs appended since the last call)."""
        now = time.time()
        with self._lock:
            roots = list(self.roots)
        out = []
        for path in find_run_folders(*roots):
            scan = self._scans.get(path)
            if scan is None:
                scan = self._scans[path] = _MetricsScan(path / METRICS_FILE)
            scan.update()
            out.append(scan.summary(now))
        return out


class Comparison:
    """The runs shown beside the current one: each curve is loaded when first shown and polled while it
    grows, and each run keeps one colour (an index into the caller's palette) for as long as this lives."""

    def __init__(self) -> None:
        self.shown: dict[Path, RunCurve] = {}
        self.colors: dict[Path, int] = {}
        self._lock = threading.Lock()
        self._loading = threading.Lock()

    def color(self, path: Path) -> int:
        with self._lock:
            return self.colors.setdefault(Path(path), len(self.colors))

    def toggle(self, path: str | Path) -> bool:
        """Show the run (loading its curve: blocking) or hide it; True when it is shown now."""
        path = Path(path).resolve()
        with self._lock:
            if self.shown.pop(path, None) is not None:
                return False
        with self._loading:  # one run loads at a time: a few at once would only hold more memory
            curve = RunCurve(path)
            curve.poll()
        self.color(path)
        with self._lock:
            self.shown[path] = curve
        return True

    def poll(self) -> bool:
        """Read what the shown runs wrote since the last poll; True if any curve changed."""
        with self._lock:
            curves = [c for c in self.shown.values() if not c.finished]
        return sum(c.poll() for c in curves) > 0

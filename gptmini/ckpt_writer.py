"""The checkpoint writer thread: saves are copied off the training loop, written here.

The engine copies a save's tensors into reused host buffers (``StagingPool``) between two steps and
hands the job to this thread, which writes it (``save_checkpoint``: atomic, verified) and puts the
result on ``done`` for the engine to report. Once the run has ended the writer is closed and a late
save request is written inline by the caller.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gptmini.checkpoint import save_checkpoint
from gptmini.staging import Spec, StagingPool
from gptmini.threads import drain


@dataclass
class SaveJob:
    run_dir: Path
    step: int
    model: dict[str, torch.Tensor]  # host copies (staged buffers)
    optimizer: dict[str, torch.Tensor]
    manifest: dict[str, Any]
    best: bool
    keep_last: int
    reason: str
    blocked: float  # seconds the training loop spent on the save (copying the state)
    staged: dict[str, torch.Tensor]  # the staging buffers, given back once written


@dataclass
class SaveResult:
    job: SaveJob
    path: Path | None
    error: Exception | None


class CheckpointWriter:
    """Writes checkpoints on a background thread; results come back on ``done``."""

    def __init__(self, staging: StagingPool) -> None:
        self.staging = staging
        self._jobs: queue.SimpleQueue[SaveJob | Spec | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[SaveResult] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self.closed = False
        self._thread = threading.Thread(target=self._work, name="gptmini-ckpt-writer", daemon=True)
        self._thread.start()

    def submit(self, sources: dict[str, torch.Tensor], extra_optimizer: dict[str, torch.Tensor], *, run_dir: Path,
               step: int, manifest: dict[str, Any], best: bool, keep_last: int, reason: str, blocked: float) -> None:
        """Copy ``sources`` (the live ``model.*`` / ``optim.*`` tensors) into staging buffers now, on the
        calling thread; write them on the writer thread (or here and now once the writer is closed)."""
        staged = self.staging.copy(sources)  # into reused host buffers: no fresh page faults
        model = {k[len("model."):]: v for k, v in staged.items() if k.startswith("model.")}
        optimizer = {k[len("optim."):]: v for k, v in staged.items() if k.startswith("optim.")}
        optimizer.update(extra_optimizer)
        self._enqueue(SaveJob(run_dir=run_dir, step=step, model=model, optimizer=optimizer, manifest=manifest,
                              best=best, keep_last=keep_last, reason=reason, blocked=blocked, staged=staged))

    def results(self):
        """The saves finished since the last call (successes and failures), oldest first."""
        return drain(self.done)

    def prefault(self, spec: Spec) -> None:
        """Map one set of staging buffers ahead of the first save, off the training thread."""
        self._enqueue(spec)

    def _enqueue(self, job: SaveJob | Spec) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        if self.closed:  # the run has ended: a late save request is written here and now
            self._run(job)
        else:
            self._jobs.put(job)

    def _work(self) -> None:
        for job in iter(self._jobs.get, None):  # None: closed
            self._run(job)

    def _run(self, job: SaveJob | Spec) -> None:
        try:
            if isinstance(job, SaveJob):
                self._save(job)
            else:
                try:
                    self.staging.prefault(job)
                except Exception:  # noqa: BLE001 - out of memory here only means the first save allocates
                    pass
        finally:
            with self._lock:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()

    def _save(self, job: SaveJob) -> None:
        try:
            path = save_checkpoint(job.run_dir, job.step, job.model, job.optimizer, job.manifest,
                                   best=job.best, keep_last=job.keep_last)
            self.done.put(SaveResult(job, path, None))
        except Exception as exc:  # disk full, permissions...
            self.done.put(SaveResult(job, None, exc))
        finally:
            self.staging.release(job.staged)

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Stop the writer thread and wait for it (a thread still alive when the interpreter exits can abort it)."""
        self.closed = True
        self._jobs.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=60)

    def finish(self) -> list[SaveResult]:
        """The run has ended: write what is queued, stop the thread, free the buffers; the last results."""
        self.wait_idle(timeout=600)
        self.close()
        self.staging.clear()
        return list(self.results())

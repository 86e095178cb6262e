"""The checkpoint writer thread: saves are copied off the training loop, written here.

The engine copies a save's tensors into reused host buffers (``StagingPool``) between two steps and
hands the job to this thread, which writes it (``save_checkpoint``: atomic, verified) and puts the
result on ``done``; ``RunSaves`` is the engine's side: it hands jobs over and tells their results as
events. Once the run has ended the writer is closed and a late save request is written inline by the
caller.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from gptmini import events as ev
from gptmini.ckpt.layout import checkpoint_name
from gptmini.ckpt.staging import Spec, StagingPool, spec_of
from gptmini.ckpt.store import save_checkpoint
from gptmini.train.threads import drain


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

    def __init__(self, staging: StagingPool, on_landed: Callable[[Path], None] | None = None) -> None:
        self.staging = staging
        self.on_landed = on_landed  # called on this thread as soon as a checkpoint is on disk
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
            if self.on_landed is not None:
                self.on_landed(path)
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


class RunSaves:
    """A run's saves: handed to the writer thread between two steps, their results told as events.

    ``last`` is the newest checkpoint on disk (a resume or restore sets it too): set by the writer thread the
    moment a save lands, before the training thread tells it, so that a process ended at once names it;
    ``on_failure`` runs when a save failed, so that the run counts its steps as unsaved again.
    """

    def __init__(self, emit: Callable[[ev.Event], None], on_failure: Callable[[], None]) -> None:
        self._emit = emit
        self._on_failure = on_failure
        self.writer: CheckpointWriter | None = None  # opened once the run folder exists
        self.last: Path | None = None

    def open(self, *, pin: bool) -> None:
        self.writer = CheckpointWriter(StagingPool(pin=pin), on_landed=self._landed)

    def _landed(self, path: Path) -> None:
        self.last = path

    @property
    def busy(self) -> bool:
        """A save is being written (or waits to be)."""
        return self.writer is not None and not self.writer.wait_idle(0)

    def prefault(self, sources: dict[str, torch.Tensor]) -> None:
        """Map a staging buffer set shaped like ``sources`` ahead of the first save, off the training thread."""
        self.writer.prefault(spec_of(sources))

    def submit(self, sources: dict[str, torch.Tensor], extra_optimizer: dict[str, torch.Tensor], *,
               run_dir: Path, step: int, **job: Any) -> Path:
        """Stage the state now; where the checkpoint will be. After the run it is written here and now,
        and a failure raises."""
        self.writer.submit(sources, extra_optimizer, run_dir=run_dir, step=step, **job)
        if not self.writer.closed:
            return run_dir / checkpoint_name(step)
        result = next(self.writer.results())
        if result.error is not None:
            raise result.error
        self._report(result)
        return result.path

    def drain(self) -> None:
        """Tell the saves finished since the last call (between two steps)."""
        if self.writer is not None:
            for result in self.writer.results():
                self._report(result)

    def finish(self) -> None:
        """The run has ended: write what is queued, stop the thread, tell the last results."""
        if self.writer is not None:
            for result in self.writer.finish():
                self._report(result)

    def _report(self, result: SaveResult) -> None:
        job = result.job
        if result.error is None:
            self.last = result.path
            self._emit(ev.CheckpointSaved(step=job.step, path=str(result.path), reason=job.reason, best=job.best,
                                          seconds=job.blocked))
        else:
            self._on_failure()
            self._emit(ev.Error(message=f"could not save checkpoint at step {job.step} in {job.run_dir}: "
                                        f"{result.error}; older checkpoints are untouched",
                                error_kind="checkpoint", step=job.step, fatal=False))

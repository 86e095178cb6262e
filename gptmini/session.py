"""``RunSession``: one training run as an interactive front end needs it -- no UI code.

A session owns either a ``Trainer`` running on its own thread, or (attach mode) a follower of a run
folder that another process trains into. It keeps what a front end shows of the run (the whole loss
history, the newest step and evaluation, the last save) up to date from the engine's events, and it
offers what a front end does with a run: start, pause, resume, save, restore, stop with a save of the
last step, a new run, the weights to sample from, and the checkpoint listing.

Threads: engine events arrive on the training thread (or, in attach mode, on whatever thread calls
``poll``); the session updates its record and then calls its listeners there, so listeners must be
cheap (append, ``post_message``). The blocking calls (``stop``, ``sampling_source``,
``list_checkpoints``, ``poll``) belong on worker threads; the rest return at once.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gptmini import events as ev
from gptmini.errors import GPTMiniError
from gptmini.events import RunState
from gptmini.history import LossHistory

Listener = Callable[[ev.Event], None]


@dataclass
class SampleEntry:
    """One sample the engine printed after an evaluation: the model's words at that point of the run."""

    step: int
    tokens_seen: int
    val_loss: float | None  # the evaluation just before it
    prompt: str
    text: str
    time: float
    strategy: str = "greedy"
    undone: bool = False  # a later restore (or resume) went back before it
    reference: str | None = None  # what the model should have written (a fine-tuning task's validation example)


@dataclass
class SamplingSource:
    """The weights a playground samples from: a snapshot of the live run or a saved checkpoint, with what the
    run trains for (``task``: its ``Task.describe()``: an instruction run's template, a classifier's labels)."""

    model: Any
    tokenizer: Any
    step: int | None
    label: str  # "live" or the checkpoint's folder name
    taken: float  # time.monotonic() when it was taken
    task: dict = field(default_factory=dict)

    def answer_settings(self, settings: Any) -> Any:
        """Sampling ``settings`` that end an instruction's answer where its examples end (end-of-text, or for a
        char model the blank line)."""
        from gptmini.tasks.instruct import answer_settings

        return answer_settings(self.tokenizer, settings)

    def label_probabilities(self, text: str) -> list[float]:
        """A classifier's probability of each of its labels for ``text`` (blocking: a forward pass);
        ``TokenizerError`` for a character a char model never saw."""
        from gptmini.tasks.classify import encode_text, predict

        pad_id = int(self.task.get("pad_id", 0))
        return predict(self.model, [encode_text(self.tokenizer, text, pad_id)], pad_id)[0].tolist()


# Sessions whose training thread may still run; their trainers are stopped at interpreter exit so a
# crash or an interrupted test never kills torch mid-step ("terminate called without an active exception").
_LIVE: dict[int, RunSession] = {}


@atexit.register
def _stop_live_sessions() -> None:
    for session in list(_LIVE.values()):
        session.close(wait=10.0)


class RunRecord(ev.Handler):
    """What the events have told of one run: the whole loss history, the newest step and evaluation,
    the last save, the state. Updated on the thread that delivers the events; read from any."""

    def __init__(self, history: LossHistory) -> None:
        self.history = history
        self.run_started: ev.RunStarted | None = None
        self.latest_step: ev.Step | None = None
        self.latest_eval: ev.Eval | None = None
        self.last_saved: ev.CheckpointSaved | None = None
        self.save_errors: list[ev.Error] = []  # checkpoint errors since the run started
        self.state: RunState = RunState.CREATED
        self.steps_seen = 0
        self.samples: list[SampleEntry] = []  # oldest first
        self.samples_version = 0  # bumped when an entry is added or marked

    def on_step(self, e: ev.Step) -> None:
        self.steps_seen += 1
        self.history.add_step(e.step, e.tokens_seen, e.epochs_done, e.loss, e.loss_smooth, e.time)
        self.latest_step = e

    def on_eval(self, e: ev.Eval) -> None:
        last = self.latest_step
        epoch = last.epochs_done if last is not None and last.step == e.step else float(e.epoch)
        self.history.add_eval(e.step, e.tokens_seen, epoch, e.val_loss, e.time, e.metrics)
        self.latest_eval = e

    def on_run_started(self, e: ev.RunStarted) -> None:
        self.run_started = e
        if e.start_step == 0:
            self.history.clear()
        else:
            self.history.truncate_after(e.start_step)
        self.latest_step = None
        self._undo_samples_after(e.start_step)

    def on_sample(self, e: ev.Sample) -> None:
        ev_ = self.latest_eval if self.latest_eval is not None and self.latest_eval.step == e.step else None
        tokens = ev_.tokens_seen if ev_ else (self.latest_step.tokens_seen if self.latest_step else 0)
        self.samples.append(SampleEntry(e.step, tokens, ev_.val_loss if ev_ else None, e.prompt, e.text, e.time,
                                        reference=e.reference))
        self.samples_version += 1

    def _undo_samples_after(self, step: int) -> None:
        for entry in self.samples:
            if entry.step > step and not entry.undone:
                entry.undone = True
                self.samples_version += 1

    def on_checkpoint_restored(self, e: ev.CheckpointRestored) -> None:
        self.history.truncate_after(e.step)  # everything after it never happened for this run any more
        if self.latest_step is not None and self.latest_step.step > e.step:
            self.latest_step = None
        if self.latest_eval is not None and self.latest_eval.step > e.step:
            self.latest_eval = None
        self._undo_samples_after(e.step)

    def on_checkpoint_saved(self, e: ev.CheckpointSaved) -> None:
        self.last_saved = e

    def on_state_changed(self, e: ev.StateChanged) -> None:
        self.state = e.state

    def on_error(self, e: ev.Error) -> None:
        if e.error_kind == "checkpoint":
            self.save_errors.append(e)


class RunSession:
    def __init__(self, *, trainer_factory: Callable[..., Any] | None = None, snapshot_max_age: float = 2.0,
                 save_timeout: float = 30.0, stop_timeout: float = 15.0) -> None:
        self.trainer_factory = trainer_factory
        self.snapshot_max_age = snapshot_max_age
        self.save_timeout = save_timeout
        self.stop_timeout = stop_timeout
        self.history = LossHistory()  # one object for the session's lifetime: a plot keeps a reference
        self.record = RunRecord(self.history)
        self.config: Any = None
        self.trainer: Any = None
        self.attach_dir: Path | None = None
        self._follower: Any = None
        self._listeners: list[Listener] = []
        self._thread: threading.Thread | None = None
        self._follow_stop = threading.Event()  # attach mode: ends the polling thread (``attach(every=...)``)
        self._follow_thread: threading.Thread | None = None
        self._done = threading.Event()
        self._done.set()
        self._lock = threading.Lock()
        self._sampling: SamplingSource | None = None
        self._attach_model: tuple[str, float] | None = None  # (path, mtime) of the checkpoint sampled in attach mode
        self.pause_requested = False  # what was asked; the engine confirms with StateChanged

    # ----------------------------------------------------------------- wiring
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @property
    def state(self) -> RunState:
        return self.record.state

    @property
    def attached(self) -> bool:
        return self.attach_dir is not None

    @property
    def run_dir(self) -> Path | None:
        if self.attach_dir is not None:
            return self.attach_dir
        started = self.record.run_started
        return Path(started.run_dir) if started is not None else None

    @property
    def is_active(self) -> bool:
        """A trainer here is in its loop: saves, restores and snapshots are served."""
        t = self.trainer
        return bool(t is not None and t.is_active and self.state in (RunState.RUNNING, RunState.PAUSED))

    @property
    def steps_since_save(self) -> int:
        if self.trainer is not None:
            return self.trainer.steps_since_save
        r = self.record
        return (r.latest_step.step if r.latest_step else 0) - (r.last_saved.step if r.last_saved else 0)

    # -------------------------------------------------------------- lifecycle
    def start(self, config: Any = None, *, paused: bool = False) -> None:
        """Start training ``config`` (default options when None) on a new thread; returns at once."""
        if self.trainer is not None and not self._done.is_set():
            raise GPTMiniError("a run is still going; stop it first")
        if config is None:
            from gptmini.train_config import TrainConfig

            config = TrainConfig()
        factory = self.trainer_factory
        if factory is None:
            from gptmini.train.engine import Trainer as factory
        self._reset()
        self.config = config
        self.pause_requested = paused
        self.trainer = trainer = factory(config, start_paused=paused)
        trainer.subscribe(self._on_event)
        self._done = done = threading.Event()
        self._thread = threading.Thread(target=self._train, args=(trainer, done), name="gptmini-train", daemon=True)
        _LIVE[id(self)] = self
        self._thread.start()

    def attach(self, run_dir: str | Path, every: float | None = None) -> None:
        """Follow the run another process trains into ``run_dir``: ``poll`` reads what is new; with ``every``
        (seconds), a thread of the session polls at once and then that often, until ``close``."""
        from gptmini.metrics import MetricsFollower

        self._reset()
        self.attach_dir = Path(run_dir)
        self._follower = MetricsFollower(self.attach_dir)
        if every is not None:
            self._follow_stop = stop = threading.Event()
            self._follow_thread = threading.Thread(target=self._follow, args=(every, stop), name="gptmini-follow",
                                                   daemon=True)
            self._follow_thread.start()

    def _follow(self, every: float, stop: threading.Event) -> None:
        problem = None
        while not stop.is_set():
            try:
                self.poll()
            except OSError as exc:  # an unreadable metrics.jsonl: said once, tried again
                if str(exc) != problem:
                    problem = str(exc)
                    latest = self.record.latest_step
                    self._on_event(ev.Warning(message=f"cannot read the run's metrics: {exc}",
                                              step=latest.step if latest else 0))
            stop.wait(every)

    def poll(self) -> list[ev.Event]:
        """Attach mode: take in the events the other process wrote since the last poll (blocking I/O)."""
        events = self._follower.poll() if self._follower is not None else []
        for event in events:
            self._on_event(event)
        return events

    def stop(self, save_reason: str | None = None) -> str | None:
        """Stop the run (blocking); with ``save_reason``, the trainer saves the last step it trained if that
        step is unsaved (deciding at its last step, not now: steps may still finish meanwhile).

        Returns what went wrong, or None.
        """
        t = self.trainer
        if t is None:
            return None
        errors_before, was_training = len(self.record.save_errors), t.is_active
        t.stop(save=save_reason is not None, reason=save_reason or "stop")
        if not self._done.wait(self.stop_timeout + (self.save_timeout if save_reason else 0.0)):
            return "the training thread did not stop in time"
        if self._thread is not None:  # let it end before the interpreter does (see the checkpoint writer)
            self._thread.join(5.0)
        errors = self.record.save_errors[errors_before:]
        if save_reason is not None and errors:
            return f"could not save: {errors[-1].message}"
        if save_reason is not None and was_training and t.steps_since_save > 0:
            return f"the last {t.steps_since_save} step(s) were not saved"
        return None

    def close(self, wait: float = 0.0) -> None:
        """Last resort (crash, forced exit): stop training without saving, or stop following another
        process's run; wait up to ``wait`` seconds."""
        _LIVE.pop(id(self), None)
        self._follow_stop.set()
        if self._follow_thread is not None:
            self._follow_thread.join(wait)
        t, done = self.trainer, self._done
        if t is not None and not done.is_set():
            t.stop(save=False)
            done.wait(wait)

    def _train(self, trainer: Any, done: threading.Event) -> None:
        try:
            trainer.run()
        except BaseException as exc:  # run() reports its own errors; this is a last resort
            self._on_event(ev.Error(message=f"training stopped: {type(exc).__name__}: {exc}",
                                    error_kind="internal", step=getattr(trainer, "step", 0), fatal=True))
        finally:
            if self.trainer is trainer:
                _LIVE.pop(id(self), None)
            done.set()

    def _reset(self) -> None:
        self._follow_stop.set()
        self.history.clear()
        self.record = RunRecord(self.history)
        self.trainer = self._follower = self.attach_dir = None
        with self._lock:
            self._sampling = None
            self._attach_model = None

    # --------------------------------------------------------------- controls
    def pause(self) -> None:
        if self.trainer is not None:
            self.trainer.pause()
            self.pause_requested = True

    def resume(self) -> None:
        if self.trainer is not None:
            self.trainer.resume()
            self.pause_requested = False

    def save(self, reason: str = "manual") -> cf.Future:
        return self._require_trainer("saving").request_save(reason)

    def restore(self, path: str | Path) -> cf.Future:
        return self._require_trainer("restoring").request_restore(path)

    def _require_trainer(self, what: str) -> Any:
        if self.attached:
            raise GPTMiniError(f"{what} belongs to the process that trains this run")
        if not self.is_active:
            raise GPTMiniError(f"{what} needs a running or paused trainer")
        return self.trainer

    # ---------------------------------------------------------------- reading
    def list_checkpoints(self) -> list:
        """This run's checkpoints, oldest first (blocking: reads every manifest)."""
        from gptmini.ckpt.listing import list_checkpoints

        run_dir = self.run_dir
        return list_checkpoints(run_dir) if run_dir is not None else []

    def sampling_source(self) -> SamplingSource:
        """The weights to sample from now (blocking; worker threads only).

        Training here: a snapshot of the live weights, reused while it is younger than
        ``snapshot_max_age`` seconds or still at the current step. Attach mode: the run's newest
        checkpoint, loaded again only when a newer one appears.
        """
        with self._lock:
            cached = self._sampling
        if self.attached:
            return self._newest_saved_weights(cached)
        t = self.trainer
        if t is None:
            raise GPTMiniError("no training run")
        if cached is not None and (cached.step == t.step or time.monotonic() - cached.taken < self.snapshot_max_age):
            return cached
        snap = t.snapshot(timeout=30.0)
        started = self.record.run_started
        source = SamplingSource(snap.model, snap.tokenizer, snap.step, "live", time.monotonic(),
                                dict(started.task_info) if started is not None else {})
        with self._lock:
            self._sampling = source
        return source

    def model_prompt(self, text: str, extra: str = "") -> str:
        """The text the model reads for what a person typed: in an instruction run, the instruction (and its
        input, ``extra``) in the run's template; otherwise the text as typed (non-blocking)."""
        started = self.record.run_started
        template = started.task_info.get("template") if started is not None and started.task == "instruct" else None
        if template is None:
            return text
        from gptmini.data.prompts import prompt_style

        return prompt_style(template).prompt(text, extra)

    @property
    def snapshot_step(self) -> int | None:
        """The step of the weights ``sampling_source`` would give now without taking a new snapshot (None: it
        holds none); a front end compares it with what it shows to follow the live weights for free."""
        with self._lock:
            return self._sampling.step if self._sampling is not None else None

    def refresh_sampling(self) -> None:
        """The next ``sampling_source`` takes a new snapshot (the weights just changed a lot: an eval)."""
        with self._lock:
            if self._sampling is not None and not self.attached:
                self._sampling.taken = float("-inf")

    def newer_checkpoint(self, infos: list) -> Any:
        """Attach mode: the newest of ``infos`` when it is not the checkpoint sampled so far, else None."""
        from gptmini.ckpt.listing import newest_checkpoint

        newest = newest_checkpoint(infos)
        with self._lock:
            sampled = self._attach_model
        if newest is None or sampled is None or (str(newest.path), newest.mtime) == sampled:
            return None
        return newest

    def _newest_saved_weights(self, cached: SamplingSource | None) -> SamplingSource:
        from gptmini.ckpt.listing import list_checkpoints, newest_checkpoint
        from gptmini.ckpt.state import load_for_inference

        newest = newest_checkpoint(list_checkpoints(self.attach_dir))
        if newest is None:
            raise GPTMiniError("no checkpoint saved yet: the playground starts once the run saves one")
        key = (str(newest.path), newest.mtime)
        with self._lock:
            if cached is not None and key == self._attach_model:
                return cached
        model, tokenizer, manifest = load_for_inference(newest.path, device="cpu")
        task = manifest.get("task")
        source = SamplingSource(model, tokenizer, newest.step, newest.name, time.monotonic(),
                                dict(task) if isinstance(task, dict) else {})
        with self._lock:
            self._sampling, self._attach_model = source, key
        return source

    # ----------------------------------------------------------------- events
    def _on_event(self, event: ev.Event) -> None:
        """Keep the record of the run, then tell the listeners (training or polling thread)."""
        self.record.handle(event)
        if isinstance(event, ev.StateChanged) and event.state in (RunState.RUNNING, RunState.PAUSED):
            self.pause_requested = event.state == RunState.PAUSED
        elif isinstance(event, ev.CheckpointRestored):
            with self._lock:
                self._sampling = None  # the weights went back
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener must never break the training loop
                pass

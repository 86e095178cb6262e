"""Typed events emitted by the training engine.

Events are small frozen dataclasses built on the training thread and handed to
subscribers synchronously. Subscribers must be cheap (append to a queue, post a
message); anything slow belongs on another thread. ``to_record()`` gives the
JSON-able dict written to ``metrics.jsonl``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, ClassVar

try:
    from enum import StrEnum
except ImportError:  # Python 3.10

    class StrEnum(str, Enum):  # type: ignore[no-redef]
        def __str__(self) -> str:
            return str(self.value)


class RunState(StrEnum):
    """Where a run is. The engine moves through these; the console and ``RunSession`` show and check them.

    A ``StrEnum``: it compares equal to its value and is written to ``metrics.jsonl`` as plain text.
    """

    CREATED = "created"
    STARTING = "starting"  # loading the corpus, tokenising, building the model
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"  # asked to stop: finishing the step, saving
    FINISHED = "finished"
    ERROR = "error"

    @property
    def ended(self) -> bool:
        return self in (RunState.FINISHED, RunState.ERROR)


def epochs_done(epoch_index: int, batch: int, batches_per_epoch: int) -> float:
    """Epochs completed as a fraction: ``epoch_index`` whole epochs (0-based) plus ``batch`` steps of the next.

    The one place the fractional epoch is computed (plot x-axis, checkpoint tables, counters).
    """
    return epoch_index + batch / max(1, batches_per_epoch)


@dataclass(frozen=True, slots=True)
class Event:
    kind: ClassVar[str] = "event"

    def to_record(self) -> dict[str, Any]:
        # Fields are scalars and strings (and RunStarted's plain config dict, never changed after the
        # event is built), so a shallow record is the whole event. This runs once per step on the
        # metrics thread, where dataclasses.asdict's deep copy cost ~25 us a step (now ~2.5 us).
        names = _FIELD_NAMES.get(type(self))
        if names is None:
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in fields(self))
        rec = {"event": self.kind}
        for name in names:
            rec[name] = getattr(self, name)
        if "metrics" in rec:  # a task's own metrics are top-level numbers in metrics.jsonl ("val_accuracy")
            rec.update(rec.pop("metrics"))
        return rec


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _now() -> float:
    return time.time()


@dataclass(frozen=True, slots=True)
class DataProgress(Event):
    """Tokenising the corpus before the run starts (a few per second; the last has done == total)."""

    kind: ClassVar[str] = "data_progress"
    corpus: str
    tokenizer: str
    done_bytes: int
    total_bytes: int
    from_cache: bool  # the token cache already held this corpus: nothing to tokenise
    elapsed_s: float
    time: float = field(default_factory=_now)

    @property
    def label(self) -> str:
        """``"tinyshakespeare (1.1 MB, char)"``"""
        return f"{self.corpus} ({self.total_bytes / 1e6:.1f} MB, {self.tokenizer})"


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    run_name: str
    run_dir: str
    model_config: dict
    n_params: int
    corpus: str
    corpus_bytes: int
    train_tokens: int
    val_tokens: int
    tokenizer: str
    vocab_size: int
    device: str
    dtype: str
    batch_size: int
    grad_accum: int
    world_size: int
    context_length: int
    epochs: int
    batches_per_epoch: int  # optimizer steps per epoch
    total_steps: int
    start_step: int
    resumed_from: str | None = None
    changed: dict = field(default_factory=dict)  # options a resume changed: {name: [old, new]}
    init_from: str | None = None  # the run started from these pretrained weights (--init-from)
    sample_prompt: str | None = None  # the prompt of the samples after each evaluation
    optimizer: str = "adamw"  # adamw, or muon (for the blocks' matrices)
    compiled: bool = False  # torch.compile: the first step waits for the compilation
    task: str = "pretrain"  # what the run trains for (gptmini.tasks)
    task_info: dict = field(default_factory=dict)  # the task's own description (its template, its labels, ...)
    trainable_params: int | None = None  # the parameters that train (fewer than n_params with LoRA or frozen layers)
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Step(Event):
    kind: ClassVar[str] = "step"
    step: int  # optimizer steps done so far (1 after the first step)
    epoch: int  # 1-based epoch the step belongs to
    batch: int  # 1-based batch index inside the epoch
    batches_per_epoch: int
    total_steps: int
    tokens_seen: int
    loss: float
    loss_smooth: float
    lr: float
    grad_norm: float
    tok_per_s: float
    eta_s: float | None
    mfu: float | None = None
    gpu_mem_gb: float | None = None
    time: float = field(default_factory=_now)

    @property
    def epochs_done(self) -> float:
        """Fractional epochs after this step (1.5 = half way through epoch 2)."""
        return epochs_done(self.epoch - 1, self.batch, self.batches_per_epoch)


@dataclass(frozen=True, slots=True)
class Eval(Event):
    kind: ClassVar[str] = "eval"
    step: int
    epoch: int
    tokens_seen: int
    val_loss: float
    val_ppl: float
    train_loss: float | None
    best: bool
    metrics: dict = field(default_factory=dict)  # the task's own metrics, e.g. {"val_accuracy": 0.95}
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Sample(Event):
    kind: ClassVar[str] = "sample"
    step: int
    prompt: str
    text: str  # what the model wrote (or, for a classifier, the label it chose)
    reference: str | None = None  # what it should have written, where the task knows it
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class CheckpointSaved(Event):
    kind: ClassVar[str] = "checkpoint"
    step: int
    path: str
    reason: str  # manual / interval / epoch / best / final / interrupt / quit
    best: bool
    seconds: float  # time the training loop was blocked
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class CheckpointRestored(Event):
    kind: ClassVar[str] = "restored"
    step: int
    epoch: int
    tokens_seen: int
    path: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    """The run's state changed (see ``RunState``)."""

    kind: ClassVar[str] = "state"
    state: RunState
    step: int
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Warning(Event):  # noqa: A001 - a warning *event*, not the builtin
    kind: ClassVar[str] = "warning"
    message: str
    step: int
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Error(Event):
    kind: ClassVar[str] = "error"
    message: str
    error_kind: str  # nan / oom / data / checkpoint / config / internal
    step: int
    fatal: bool
    time: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Finished(Event):
    kind: ClassVar[str] = "finished"
    step: int
    reason: str  # completed / stopped / error
    loss: float | None
    val_loss: float | None
    elapsed_s: float
    tokens_seen: int
    metrics: dict = field(default_factory=dict)  # the task's measures of the finished model ({"test_accuracy": ...})
    time: float = field(default_factory=_now)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (DataProgress, RunStarted, Step, Eval, Sample, CheckpointSaved, CheckpointRestored, StateChanged, Warning, Error, Finished)
}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


HANDLER_NAMES: dict[type[Event], str] = {cls: f"on_{_snake(cls.__name__)}" for cls in EVENT_TYPES.values()}


class Handler:
    """The one dispatch of engine events: ``handle(event)`` calls ``on_<event type>(event)``.

    ``on_step``, ``on_eval``, ``on_run_started``, ``on_checkpoint_saved``, ... (``HANDLER_NAMES``); a
    consumer defines the methods for the events it cares about and ignores the rest. The CLI reporter,
    ``RunSession``'s record of a run and the console's log pane are handlers; the console turns each
    event type into its own Textual message.
    """

    def handle(self, event: Event) -> Any:
        method = getattr(self, HANDLER_NAMES[type(event)], None)
        return method(event) if method is not None else self.unhandled(event)

    def unhandled(self, event: Event) -> Any:
        """Events of a type this handler has no method for."""
        return None


def event_from_record(record: dict[str, Any]) -> Event | None:
    """Rebuild an event from a ``metrics.jsonl`` line (unknown kinds give ``None``)."""
    cls = EVENT_TYPES.get(record.get("event", ""))
    if cls is None:
        return None
    names = set(cls.__dataclass_fields__)
    values = {k: v for k, v in record.items() if k in names}
    if "metrics" in names:  # written flat (to_record): every other number of the line is a task metric
        values["metrics"] = {k: v for k, v in record.items()
                             if k not in names and k != "event" and isinstance(v, (int, float))}
    if cls is StateChanged and "state" in values:
        values["state"] = RunState(values["state"])  # ValueError for a state this version does not know
    return cls(**values)

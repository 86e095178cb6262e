"""The seam between the engine and what a run trains for.

A ``Task`` owns everything that differs between pre-training on text windows and fine-tuning on
examples: reading and checking its data, the split, the batches ``(x, y)`` (targets that must not count
hold ``IGNORE_INDEX``), how many targets a batch really holds (what tokens seen, tok/s, MFU and ETA
count), its evaluation (the loss and any metric of its own), the samples shown after an evaluation, and
what a checkpoint records so that a resume is exact. The ``Trainer`` receives a task and never asks
which one it has: it trains on ``task.batches(...)``, calls ``task.evaluate(...)`` and ``task.samples(...)``,
and writes ``task.describe()`` into ``config.json`` and each checkpoint.

The loss is the model's own: ``model(x, y)`` is the mean cross-entropy over the targets that are not
``IGNORE_INDEX``, whatever the model's head (the vocabulary, or a classifier's labels).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from gptmini.data.batch import Batch
from gptmini.stopping import check_stop

if TYPE_CHECKING:
    import torch

    from gptmini import events as ev
    from gptmini.text.tokenizer import Tokenizer
    from gptmini.train.device import DeviceChoice
    from gptmini.train_config import TrainConfig

Emit = Callable[["ev.Event"], None]


class BatchSource(Protocol):
    """A task's training batches: ``epoch_batches(epoch, start_batch)`` is a pure function of the epoch (and
    the seed the source was built with), so a resume mid-epoch continues with exactly the next batch."""

    batches_per_epoch: int
    same_shape: bool  # every batch has one shape (a CPU run then keeps freed memory: train/memory.py)

    def epoch_batches(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]: ...


@dataclass(frozen=True)
class DataSummary:
    """What a run trains on, as ``RunStarted``, ``config.json`` and the console's header say it."""

    name: str  # a corpus name, or a data file's
    n_bytes: int
    train_tokens: int  # target tokens in the train split
    val_tokens: int
    extra: dict[str, Any] = field(default_factory=dict)  # task-specific counts (examples, labels, ...)


@dataclass(frozen=True)
class EvalResult:
    val_loss: float
    train_loss: float | None
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. {"val_accuracy": 0.95}


class Task(ABC):
    """What a run trains for. Built from the run's options; ``load`` before anything else, ``prepare`` once
    the model's context length is known. Subclasses set every attribute in ``__init__``."""

    name: ClassVar[str]

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.tokenizer: Tokenizer | None = None
        self.summary: DataSummary | None = None

    @abstractmethod
    def load(self, tokenizer: Tokenizer | str, emit: Emit, resume_dir: Path | None = None) -> Tokenizer:
        """Read and check the data, split it, tokenise it with ``tokenizer`` (a name, or one already built:
        a resumed run's or the pretrained model's); returns the tokenizer the run uses. ``resume_dir``: the
        folder of the run being resumed, holding what ``run_files`` wrote there."""

    def run_files(self) -> dict[str, Any]:
        """JSON documents the run folder must hold for a resume to be exact (``{"split.json": {...}}``)."""
        return {}

    def model_overrides(self) -> dict[str, Any]:
        """Fields of the model's config this task fixes (a classifier's number of labels)."""
        return {}

    @abstractmethod
    def prepare(self, context_length: int, batch_size: int, *, seed: int, rank: int, world_size: int) -> BatchSource:
        """Check that the data fits the model and the batch; build the evaluation sets; return the training
        batches (this process's share under torchrun)."""

    @abstractmethod
    def evaluate(self, model: torch.nn.Module, device: torch.device, precision: DeviceChoice) -> EvalResult:
        """The validation (and train) loss over fixed batches, and the task's own metrics; the model is in
        eval mode."""

    def adapt(self, model: torch.nn.Module) -> None:
        """Choose which weights train (after LoRA, if any, froze the model): a classifier's last layers."""

    def final_metrics(self, model: torch.nn.Module, device: torch.device, precision: DeviceChoice) -> dict[str, float]:
        """Measures of the finished model on held-out data (a classifier's test accuracy); in eval mode."""
        return {}

    def samples(self, model: torch.nn.Module, step: int) -> list[ev.Event]:
        """What the console and the log show after an evaluation (``Sample`` events, or a ``Warning``)."""
        return []

    def describe(self) -> dict[str, Any]:
        """What ``config.json`` and each checkpoint record of the task (a resume checks it)."""
        return {"name": self.name}

    @property
    def sample_prompt(self) -> str | None:
        """The prompt the playground suggests (None: the task has no single prompt)."""
        return None


def mean_loss(model: torch.nn.Module, batches: list[Batch], device: torch.device, precision: DeviceChoice) -> float:
    """The mean of the model's loss over fixed batches (call with the model in eval mode, under no_grad).
    A stop request (``stopping``) ends it between two batches."""
    total = 0.0
    for batch in batches:
        check_stop()
        with precision.autocast():
            _, loss = model(batch.x.to(device), batch.y.to(device))
        total += loss.item()
    return total / max(1, len(batches))

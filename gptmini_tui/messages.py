"""Messages posted to the app (from the engine bridge and from worker threads).

Every message is a small dataclass. Flood-prone latest-value messages
(``StepProgress``, ``ReplyProgress``) implement ``can_replace`` so a queue of
them collapses to the newest; nothing that must not be lost is replaceable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass
class EngineEvent(Message):
    """Any engine event except ``Step`` (runs started, evals, saves, errors, ...)."""

    event: Any


@dataclass
class StepProgress(Message):
    """The newest ``Step`` event (latest value; the full history is in ``LossHistory``)."""

    event: Any

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StepProgress)


@dataclass
class HistoryReset(Message):
    """The loss history was cut back (checkpoint restored / new run)."""

    step: int


@dataclass
class TrainerExited(Message):
    """The training worker returned (normally or with an exception)."""

    error: str | None = None


@dataclass
class ReplyStarted(Message):
    reply_id: int
    label: str
    weights_step: int | None


@dataclass
class ReplyProgress(Message):
    """Everything generated so far for one reply (latest value)."""

    reply_id: int
    text: str
    n_tokens: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ReplyProgress) and message.reply_id == self.reply_id


@dataclass
class ReplyFinished(Message):
    reply_id: int
    text: str
    n_tokens: int
    seconds: float
    reason: str  # done / stopped / error
    error: str | None = None


@dataclass
class GenerationIdle(Message):
    """The generation worker finished all of its replies."""

    generation: int


@dataclass
class DistributionReady(Message):
    request: int
    prompt: str
    label: str
    candidates: list = field(default_factory=list)
    weights_step: int | None = None
    error: str | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DistributionReady)


@dataclass
class CheckpointsListed(Message):
    run_dir: str
    infos: list = field(default_factory=list)
    error: str | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CheckpointsListed)


@dataclass
class AttachModelChanged(Message):
    """Attach mode: the playground now samples from this checkpoint."""

    name: str
    step: int


@dataclass
class StopSignal(Message):
    """The process was told to stop from outside: ``SIGTERM``, or its terminal hung up
    (``SIGHUP``, or the terminal polled as hung up: an SSH connection dropped, a window closed).

    The driver posts ``hangup`` once, however it noticed; a second ``SIGTERM`` means "now", like
    a second ``q``.
    """

    name: str  # "SIGTERM" or "hangup"

"""Messages that cross the console's modules: engine events on their way in, and the app's own facts.

Each engine event type gets its own message class, made here from ``gptmini.events.EVENT_TYPES``:
``engine(ev.Eval)`` is the class a handler names with ``@on(engine(ev.Eval))``. Adding an event type
to the engine therefore adds its message without touching this file. Steps are the one flood-prone
kind: their message is replaceable (a queue of them collapses to the newest; the full history is in
the session's ``LossHistory``). Messages private to one widget (a reply's progress, a listing) live
beside that widget.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from gptmini import events as ev


class EngineMessage(Message, namespace="engine"):
    """An engine event delivered to the console (subclassed once per event type: ``on_engine_eval``, ...)."""

    event_type: type[ev.Event] = ev.Event

    def __init__(self, event: ev.Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return self.event_type is ev.Step and type(message) is type(self)


_MESSAGES: dict[type[ev.Event], type[EngineMessage]] = {
    cls: type(cls.__name__, (EngineMessage,), {"event_type": cls, "__module__": __name__,
                                               "__doc__": f"Engine event ``{cls.__name__}``."}, namespace="engine")
    for cls in ev.EVENT_TYPES.values()
}


def engine(event_type: type[ev.Event]) -> type[EngineMessage]:
    """The message class for an engine event type (for ``@on``)."""
    return _MESSAGES[event_type]


def engine_message(event: ev.Event) -> EngineMessage:
    return _MESSAGES[type(event)](event)


@dataclass
class StopSignal(Message):
    """The process was told to stop from outside: ``SIGTERM``, or its terminal hung up
    (``SIGHUP``, or the terminal polled as hung up: an SSH connection dropped, a window closed).

    The driver posts ``hangup`` once, however it noticed; a second ``SIGTERM`` means "now", like
    a second ``q``.
    """

    name: str  # "SIGTERM" or "hangup"


@dataclass
class QuitReady(Message):
    """The run is stopped (and its last step saved) for quitting; ``problem`` says what went wrong."""

    problem: str | None


@dataclass
class Saved(Message):
    """Something was written where the user can open it (``text`` says what and where)."""

    text: str
    ok: bool = True

"""Small helpers for the engine's threads."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


def drain(q: queue.SimpleQueue[T]) -> Iterator[T]:
    """Everything waiting in ``q`` now, oldest first, without blocking."""
    while True:
        try:
            yield q.get_nowait()
        except queue.Empty:
            return

"""Helpers shared by the TUI tests (a uniquely named module, importable from the tests).

Nothing here synchronises by sleeping: a test sends a key or a request, then waits for what it
should cause (``wait_until``, with a generous timeout that only a broken console reaches). The
polling interval is how often the condition is checked while the app runs, not a guess at how
long something takes.
"""

from __future__ import annotations

import time
from pathlib import Path

from textual import events

# What each non-character key name types (None: types nothing), as a terminal would send it.
_KEY_CHARS = {
    "space": " ", "question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]",
    "minus": "-", "plus": "+", "equals_sign": "=", "slash": "/", "enter": "\r", "tab": "\t",
    "escape": None, "ctrl+s": None, "ctrl+c": None, "ctrl+p": None, "ctrl+q": None,
}


async def wait_until(pilot, predicate, timeout: float = 30.0, what: str = "condition") -> None:
    """Let the app run until ``predicate()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


async def press(pilot, *keys: str, until, what: str, timeout: float = 30.0) -> None:
    """Send ``keys`` to the app in order, then wait until ``until()`` holds (what the keys should cause).

    ``Pilot.press`` instead waits for the whole *process* to go idle after each key, which never
    happens while a training thread is busy.
    """
    for key in keys:
        char = _KEY_CHARS[key] if key in _KEY_CHARS else key
        pilot.app.post_message(events.Key(key, char))
    await wait_until(pilot, until, timeout, what)


def current_step(app) -> int:
    step = app.session.record.latest_step
    return step.step if step is not None else 0


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).glob("step-*") if (p / "manifest.json").is_file())


def record_notifications(app) -> list[tuple[str, str]]:
    """(severity, message) of every notification the app shows from now on."""
    seen: list[tuple[str, str]] = []
    notify = app.notify

    def recording(message, *args, **kwargs):
        seen.append((kwargs.get("severity", "information"), str(message)))
        return notify(message, *args, **kwargs)

    app.notify = recording
    return seen

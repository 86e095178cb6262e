"""Polling helpers shared by the TUI tests (a uniquely named module, importable from the tests)."""

from __future__ import annotations

import time
from pathlib import Path


async def wait_until(pilot, predicate, timeout: float = 20.0, what: str = "condition") -> None:
    """Let the app run until ``predicate()`` is true (fails the test after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def current_step(app) -> int:
    b = app.bridge
    return b.latest_step.step if b is not None and b.latest_step is not None else 0


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).glob("step-*") if (p / "manifest.json").is_file())


async def press(pilot, *keys: str, gap: float = 0.02) -> None:
    """Like ``Pilot.press`` but without waiting for the *process* to go idle.

    ``Pilot.press`` waits (up to 1 s, twice per key) for CPU idleness, which
    never comes while a training thread is busy; this sends the same key
    events and only waits until the app has processed its queued messages.
    """
    import unicodedata

    from textual import events
    from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key

    app = pilot.app
    for key in keys:
        if len(key) == 1 and not key.isalnum():
            key = _character_to_key(key)
        original = REPLACED_KEYS.get(key, key)
        try:
            char = unicodedata.lookup(_get_unicode_name_from_key(original))
        except KeyError:
            char = key if len(key) == 1 else None
        app.post_message(events.Key(key, char))
        await pilot.pause(0)  # the app handled the key (and forwarded it to the focused widget)
        await pilot.pause(gap)  # ... which handled it too

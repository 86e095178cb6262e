"""Temporary files of writes in progress, so that a process ended at once leaves none behind.

Every write that lands by renaming a temporary file (or folder) into place registers the temporary path
while it exists (``in_progress``). The normal ways out (done, an error, a stop) remove it themselves; a
command that ends the process at once (a second Ctrl+C: ``os._exit``, no ``finally`` runs) first calls
``remove_all()``.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

_lock = threading.RLock()  # re-entrant: a signal handler may run while this thread holds it
_live: set[Path] = set()


@contextlib.contextmanager
def in_progress(path: Path) -> Iterator[Path]:
    """Register ``path`` (a temporary file or folder) while the block runs; on the way out it is removed
    if it still exists (after a successful rename it no longer does)."""
    with _lock:
        _live.add(path)
    try:
        yield path
    finally:
        _remove(path)
        with _lock:
            _live.discard(path)


def live() -> list[Path]:
    with _lock:
        return sorted(_live)


def remove_all() -> None:
    """Remove every registered temporary path (the process is about to end at once)."""
    for path in live():
        _remove(path)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

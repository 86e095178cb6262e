"""One writer per run folder: an OS lock (``flock``) on ``run_dir/.lock``.

The kernel releases the lock when the process ends, however it ends (kill -9 included), so a dead
run never leaves a stale lock. The lock file also says who holds it (PID, host, command, since when),
for the message a second writer gets. Readers (``--attach``, ``gptmini sample``, ``gptmini
checkpoints``) take no lock.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from gptmini.errors import ConfigError

LOCK_FILE = ".lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]


class RunFolderBusy(ConfigError):
    """Another process is training into this run folder."""


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the folder, or raise ``RunFolderBusy`` naming the process that holds it."""
        if fcntl is None or self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, 4096))
            os.close(fd)
            raise RunFolderBusy(
                f"{self.path.parent} is being trained by another process ({holder}); wait for it to end, "
                f"follow it with gptmini-tui --attach {self.path.parent}, or train into another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                                 "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])[:300]}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None


def _describe(raw: bytes) -> str:
    try:
        info = json.loads(raw.decode())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"PID {info['pid']} on {info['host']} since {since}: {info.get('command', '?')}"
    except (ValueError, KeyError, TypeError):
        return "its owner did not say who it is"

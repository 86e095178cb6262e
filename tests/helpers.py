"""Small shared helpers for tests (tiny configs, waiting on a running trainer)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from gptmini.train.engine import Trainer
from gptmini.train_config import TrainConfig

TINY = dict(n_layers=1, n_heads=2, d_model=32, context=32, batch_size=4, eval_batches=2, sample_tokens=8)


def tiny_config(data: Path, out: Path, **kw) -> TrainConfig:
    opts = dict(TINY, data=[str(data)], out=str(out), max_steps=20, eval_interval=10, save_interval=1000, seed=7)
    opts.update(kw)
    return TrainConfig(**opts)


def wait_for_exit(pid: int, timeout: float, what: str) -> int:
    """Reap child ``pid`` (not spawned through subprocess) and return its wait status; fail after ``timeout`` s."""
    import os

    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        assert time.monotonic() < deadline, f"{what} did not exit within {timeout:.0f} s"
        time.sleep(0.2)


class Recorder:
    """Collects engine events (thread-safe) and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list = []
        self._cond = threading.Condition()

    def __call__(self, event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, kind: type) -> list:
        with self._cond:
            return [e for e in self.events if isinstance(e, kind)]

    def wait_for(self, predicate, timeout: float = 60.0, since: int = 0):
        """The first event (from index ``since`` on) for which ``predicate`` holds, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events[since:]:
                    if predicate(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("event did not arrive")
                self._cond.wait(left)


def start_in_thread(trainer: Trainer) -> threading.Thread:
    th = threading.Thread(target=trainer.run, daemon=True)
    th.start()
    return th


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]


class ByteTokenizer:
    """Byte-level tokenizer for sampling tests: ids 0..255 are bytes, 256 is <|endoftext|>."""

    name = "bytes"
    vocab_size = 257
    eot_id = 256

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode_bytes(self, ids):
        return bytes(i for i in ids if i < 256)

    def decode(self, ids):
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_text(self, i):
        return "<|endoftext|>" if i == 256 else self.decode_bytes([i]).decode("utf-8", errors="backslashreplace")

    def describe(self):
        return {"name": self.name}


def in_small_mount(tmp_path: Path, options: str, command: list[str]) -> subprocess.CompletedProcess:
    """``command`` with ``tmp_path/mnt`` a fresh tmpfs mounted with ``options``, for that command alone; its
    stdout ends with ``LEFT: <what the mount holds afterwards>``."""
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs unshare and root to mount a small filesystem")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    quoted = " ".join(f'"{c}"' for c in command)
    script = (f'mount -t tmpfs -o {options} tmpfs "{mnt}" || exit 99; {quoted}; rc=$?; '
              f'echo "LEFT:$(ls -A "{mnt}" | tr "\\n" " ")"; exit $rc')
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    if out.returncode == 99 or "unshare failed" in out.stderr:
        pytest.skip(f"cannot mount here: {out.stderr.strip()}")
    return out

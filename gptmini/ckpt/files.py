"""Writes that land whole or not at all: fsync'ed files, atomic JSON and pointer files, folders removed
by renaming them away first."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from gptmini import tempfiles


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_bytes_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_pointer(run_dir: Path, pointer: str, target: str) -> None:
    """Atomically make ``run_dir/pointer`` name ``target``."""
    tmp = run_dir / f".{pointer}.tmp-{os.getpid()}"
    with tempfiles.in_progress(tmp):
        _write_bytes_synced(tmp, (target + "\n").encode())
        os.replace(tmp, run_dir / pointer)
    _fsync_dir(run_dir)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``path`` whole or not at all (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tempfiles.in_progress(tmp):
        tmp.write_text(json.dumps(data, indent=2, default=str))
        os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all, synced (a crash leaves the old file or the new one, never half)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tempfiles.in_progress(tmp):
        _write_bytes_synced(tmp, text.encode("utf-8"))
        os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_pointer(run_dir: Path, pointer: str) -> str | None:
    try:
        return (run_dir / pointer).read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None



def _remove_dir(path: Path) -> None:
    """Rename first (atomic), then delete: a crash mid-delete never leaves a half folder in view."""
    trash = path.with_name(f".trash-{path.name}-{time.monotonic_ns()}")
    try:
        os.replace(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)



def write_folder_atomic(out: Path, fill) -> Path:
    """Make folder ``out`` whole or not at all: ``fill(tmp)`` writes into a hidden sibling, which then replaces
    ``out`` (an existing one is removed only once the new one is complete)."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out

"""The paths a run reads and writes, checked before anything starts: one clear line each, nothing written.

Used by ``gptmini train`` and ``gptmini-tui`` before torch is even imported, by the console's new-run
form, and by the engine itself (a library user gets the same messages).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gptmini.errors import ConfigError


def check_run_paths(cfg) -> None:
    """``--data`` exists, ``--resume`` exists, and the run folder can be created and written."""
    if cfg.data and cfg.task == "pretrain":  # a fine-tuning task's data may be a data set's name: its task reads it
        from gptmini.text.corpus import check_data_paths

        check_data_paths(cfg.data)
    if cfg.init_from:
        from gptmini.interop.pretrained import check_init_spec

        check_init_spec(cfg.init_from)
    if cfg.resume:
        resume = Path(cfg.resume).expanduser()
        if not resume.exists():
            raise ConfigError(f"--resume: no such checkpoint or run folder: {resume}")
    out = cfg.out
    if out is None and cfg.resume:
        resume = Path(cfg.resume).expanduser()
        out = resume if (resume / "latest").exists() or not (resume / "manifest.json").exists() else resume.parent
    check_writable_folder(Path(out) if out is not None else Path("checkpoints"), "--out" if cfg.out else "run folder")


def check_writable_folder(path: Path, what: str) -> None:
    """``path`` is a folder that can be written, or one that can be created (nothing is left behind)."""
    path = path.expanduser()
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == path else f"is under {existing}, which is a file"
        raise ConfigError(f"{what} {path} {where}, not a folder")
    try:  # the only sure test: write something there (root may write where the mode bits say no)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot write in {existing} ({exc.strerror or exc})") from None
    if existing != path and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: cannot create folders in {existing}")


def check_output_file(path: Path, force: bool, what: str = "--out") -> None:
    """``path`` is a file that may be written: not there yet (or ``force``), in a folder that can be written
    or created. Nothing is written."""
    path = path.expanduser()
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; give a file name")
    if path.exists() and not force:
        raise ConfigError(f"{what} {path} exists; pass --force to overwrite it")
    check_writable_folder(path.parent, f"{what} {path}: folder")

"""A run's checkpoints as the console and ``gptmini checkpoints`` list them (manifests only: cheap)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gptmini import events
from gptmini.ckpt.files import read_pointer
from gptmini.ckpt.layout import _PREFIX
from gptmini.ckpt.seal import check_sealed, read_manifest
from gptmini.errors import CheckpointError


# ------------------------------------------------------------------ listing
@dataclass
class CheckpointInfo:
    name: str
    path: Path
    step: int
    epoch: int | None  # epochs completed (the manifest's 0-based epoch index)
    tokens_seen: int | None
    train_loss: float | None
    val_loss: float | None
    size_bytes: int
    mtime: float
    is_latest: bool
    is_best: bool
    error: str | None = None  # set when the manifest cannot be read
    epochs_done: float | None = None  # epochs completed, with the fraction of the current one (1.50 = mid-epoch 2)


def list_checkpoints(run_dir: str | Path) -> list[CheckpointInfo]:
    """Checkpoints of one run, oldest first (reads manifests only; cheap)."""
    run_dir = Path(run_dir)
    latest = read_pointer(run_dir, "latest")
    best = read_pointer(run_dir, "best")
    out: list[CheckpointInfo] = []
    for p in sorted(run_dir.glob(f"{_PREFIX}*")):
        if not p.is_dir():
            continue
        error = None
        try:
            m = read_manifest(p)
            check_sealed(p, m)
        except CheckpointError as exc:
            m, error = {}, str(exc)
        size = sum(f.stat().st_size for f in p.iterdir() if f.is_file())
        pos = m.get("position", {})
        epochs_done = None
        if isinstance(pos.get("epoch"), int) and isinstance(pos.get("batch"), int) and pos.get("steps_per_epoch"):
            epochs_done = events.epochs_done(pos["epoch"], pos["batch"], pos["steps_per_epoch"])
        out.append(
            CheckpointInfo(
                name=p.name,
                path=p,
                step=int(m.get("step", 0) or 0),
                epoch=pos.get("epoch"),
                tokens_seen=pos.get("tokens_seen"),
                train_loss=m.get("train_loss"),
                val_loss=m.get("val_loss"),
                size_bytes=size,
                mtime=p.stat().st_mtime,
                is_latest=p.name == latest,
                is_best=p.name == best,
                error=error,
                epochs_done=epochs_done,
            )
        )
    return out


def newest_checkpoint(infos: list[CheckpointInfo]) -> CheckpointInfo | None:
    """The checkpoint ``latest`` points at, else the highest step; unreadable ones never."""
    good = [i for i in infos if i.error is None]
    latest = [i for i in good if i.is_latest]
    return latest[0] if latest else max(good, key=lambda i: i.step, default=None)




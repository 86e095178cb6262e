"""Checkpoints: safetensors + JSON, written atomically, verified on load.

A checkpoint folder is built under a hidden temporary name, every file is
fsync'ed, ``manifest.json`` (sizes and sha256 of the other files) is written
last, and the folder is renamed into place; only then do the pointers move.
Loading never unpickles anything: tensors come from safetensors, the rest from
JSON. The folder layout is ``ckpt.layout``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gptmini import tempfiles
from gptmini.ckpt.files import (
    _fsync_dir,
    _remove_dir,
    _sha256,
    _write_bytes_synced,
    read_pointer,
    write_pointer,
)
from gptmini.ckpt.layout import (
    _PREFIX,
    FORMAT_VERSION,
    MANIFEST,
    MODEL_FILE,
    OPTIM_FILE,
    POINTERS,
    checkpoint_name,
)
from gptmini.ckpt.optim_state import unflatten_optimizer_state
from gptmini.ckpt.seal import SEAL_KEY, _seal, verify_checkpoint
from gptmini.errors import CheckpointError
from gptmini.model.config import ModelConfig


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, torch.Tensor] | None,
    manifest: dict[str, Any],
    *,
    best: bool = False,
    keep_last: int = 3,
) -> Path:
    """Write one checkpoint atomically, move the pointers, prune old ones.

    ``model_state``/``optimizer_state`` must already be CPU tensors (the
    engine copies them off the training thread's device). Raises ``OSError``
    on a failed write, leaving older checkpoints untouched.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(step)
    final = run_dir / name
    tmp = run_dir / f".tmp-{name}-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir()
    with tempfiles.in_progress(tmp):  # removed on any way out, and by a process ended at once
        full = dict(manifest)
        full["format_version"] = FORMAT_VERSION
        full["step"] = step
        # The manifest's own contents are recorded inside the model file, whose sha256 the manifest then
        # lists: an edited manifest no longer matches the model file, an edited model file its sha256.
        record = {SEAL_KEY: _seal(full)}
        files: dict[str, dict[str, Any]] = {}
        parts = [(MODEL_FILE, model_state, record)]
        if optimizer_state is not None:
            parts.append((OPTIM_FILE, optimizer_state, None))
        for fname, tensors, metadata in parts:
            path = tmp / fname
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
            with path.open("rb+") as fh:
                os.fsync(fh.fileno())
            files[fname] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        full["files"] = files
        full["saved_at"] = time.time()
        _write_bytes_synced(tmp / MANIFEST, json.dumps(full, indent=1, sort_keys=True).encode())
        _fsync_dir(tmp)
        if final.exists():  # same step saved again (e.g. after a restore): swap it out
            old = run_dir / f".old-{name}-{time.monotonic_ns()}"
            os.replace(final, old)
            os.replace(tmp, final)
            _remove_dir(old)
        else:
            os.replace(tmp, final)
        _fsync_dir(run_dir)
    write_pointer(run_dir, "latest", name)
    if best:
        write_pointer(run_dir, "best", name)
    prune_checkpoints(run_dir, keep_last)
    return final


def prune_checkpoints(run_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints, keeping latest and best."""
    folders = sorted(p for p in run_dir.glob(f"{_PREFIX}*") if p.is_dir())
    protected = {read_pointer(run_dir, p) for p in POINTERS}
    keep = {p.name for p in folders[-keep_last:]} | {p for p in protected if p}
    removed = []
    for p in folders:
        if p.name not in keep:
            _remove_dir(p)
            removed.append(p)
    for pattern in (".tmp-*", ".old-*", ".trash-*"):  # leftovers of a crashed save or prune
        for stale in run_dir.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)
    return removed



# ------------------------------------------------------------------ loading
@dataclass
class Checkpoint:
    path: Path
    manifest: dict[str, Any]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None  # a state dict ready for optimizer.load_state_dict
    rng: dict[str, torch.Tensor]  # RNG states saved beside the optimizer ("rng.torch_cpu", "rng.cuda")

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.manifest["model_config"])

    @property
    def step(self) -> int:
        return int(self.manifest["step"])


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder (meaning its latest checkpoint)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"no such checkpoint or run folder: {p}")
    if (p / MANIFEST).exists():
        return p
    if p.is_dir():
        name = read_pointer(p, "latest")
        if name and (p / name / MANIFEST).exists():
            return p / name
        found = sorted(c for c in p.glob(f"{_PREFIX}*") if (c / MANIFEST).exists())
        if found:
            return found[-1]
        if any(p.glob(f"*/{_PREFIX}*/{MANIFEST}")):
            raise CheckpointError(f"{p} holds several runs; name one of its run folders")
        raise CheckpointError(f"no checkpoint found in {p}")
    raise CheckpointError(f"{p} is not a checkpoint folder (it has no {MANIFEST})")




def _load_tensors(path: Path, device: str) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a valid safetensors file ({exc})") from None


def load_checkpoint(path: str | Path, *, device: str = "cpu", with_optimizer: bool = True) -> Checkpoint:
    """Load and verify a checkpoint (folder or run folder)."""
    ckpt_dir = resolve_checkpoint(path)
    manifest = verify_checkpoint(ckpt_dir, files=None if with_optimizer else (MODEL_FILE,))
    model = _load_tensors(ckpt_dir / MODEL_FILE, device)
    optimizer, rng = None, {}
    if with_optimizer and OPTIM_FILE in manifest["files"]:
        tensors = _load_tensors(ckpt_dir / OPTIM_FILE, device)
        rng = {k: tensors.pop(k) for k in list(tensors) if k.startswith("rng.")}
        try:
            optimizer = unflatten_optimizer_state(tensors, manifest.get("optimizer", {"param_groups": []}))
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{ckpt_dir / OPTIM_FILE}: unexpected optimizer layout ({exc})") from None
    return Checkpoint(ckpt_dir, manifest, model, optimizer, rng)


"""Checkpoints: safetensors + JSON, written atomically, verified on load.

Layout of a run directory::

    run_dir/
      config.json, metrics.jsonl
      step-000500/  model.safetensors  optimizer.safetensors  manifest.json
      latest        (text: the folder name of the newest checkpoint)
      best          (text: the folder name of the best-by-val-loss checkpoint)

A checkpoint folder is built under a hidden temporary name, every file is
fsync'ed, ``manifest.json`` (sizes and sha256 of the other files) is written
last, and the folder is renamed into place; only then do the pointers move.
Loading never unpickles anything: tensors come from safetensors, the rest from
JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gptmini import events
from gptmini.config import ModelConfig
from gptmini.errors import CheckpointError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
POINTERS = ("latest", "best")
_PREFIX = "step-"


# ---------------------------------------------------------------- low level
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
    _write_bytes_synced(tmp, (target + "\n").encode())
    os.replace(tmp, run_dir / pointer)
    _fsync_dir(run_dir)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``path`` whole or not at all (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def read_pointer(run_dir: Path, pointer: str) -> str | None:
    try:
        return (run_dir / pointer).read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:06d}"


def live_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What a save copies: the live model and optimizer tensors (no copies), prefixed ``model.`` /
    ``optim.``, and the optimizer's JSON-able metadata."""
    sources = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = flatten_optimizer_state(optimizer.state_dict())
    sources.update({f"optim.{k}": v for k, v in opt_tensors.items()})
    return sources, opt_meta


# --------------------------------------------------- optimizer (de)serialising
def flatten_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors and JSON-able metadata."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = value.detach().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    meta = {"param_groups": state["param_groups"], "scalars": scalars}
    json.dumps(meta)  # fail now, not at load time, if something isn't JSON-able
    return tensors, meta


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


# ------------------------------------------------------------------- saving
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
    try:
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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


def _remove_dir(path: Path) -> None:
    """Rename first (atomic), then delete: a crash mid-delete never leaves a half folder in view."""
    trash = path.with_name(f".trash-{path.name}-{time.monotonic_ns()}")
    try:
        os.replace(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


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


def read_manifest(ckpt_dir: Path) -> dict[str, Any]:
    mpath = ckpt_dir / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{mpath} is missing: not a complete checkpoint") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{mpath} is not readable JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{mpath} is not a checkpoint manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{mpath}: unknown checkpoint format version {version!r} (this GPTMini reads version {FORMAT_VERSION})"
        )
    for key in ("files", "model_config", "step"):
        if key not in manifest:
            raise CheckpointError(f"{mpath}: manifest lacks {key!r}")
    return manifest


SEAL_KEY = "gptmini_manifest_sha256"


def _seal(manifest: dict[str, Any]) -> str:
    """The sha256 of a manifest's contents, leaving out what is only known after the files are written."""
    core = {k: v for k, v in manifest.items() if k not in ("files", "saved_at")}
    return hashlib.sha256(json.dumps(core, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_sealed(ckpt_dir: Path, manifest: dict[str, Any]) -> None:
    """The manifest says what was saved: its step matches the folder's name and its contents the record
    kept in the model file at save time (checkpoints from before that record only get the name check)."""
    mpath = ckpt_dir / MANIFEST
    if ckpt_dir.name.startswith(_PREFIX) and ckpt_dir.name != checkpoint_name(manifest["step"]):
        raise CheckpointError(f"{mpath} says step {manifest['step']} but the folder is {ckpt_dir.name}: "
                              f"the manifest was edited or moved; it is not trusted")
    try:
        with safe_open(str(ckpt_dir / MODEL_FILE), "pt") as fh:
            recorded = (fh.metadata() or {}).get(SEAL_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{ckpt_dir / MODEL_FILE} is not a valid safetensors file ({exc})") from None
    if recorded is not None and recorded != _seal(manifest):
        raise CheckpointError(f"{mpath} was edited after the save (it no longer matches the record kept in "
                              f"{MODEL_FILE}); it is not trusted")


def verify_checkpoint(ckpt_dir: Path, manifest: dict[str, Any] | None = None,
                      files: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Check the manifest against the model file's record of it, and that the files listed (``files``:
    only these) exist with their size and hash."""
    manifest = manifest or read_manifest(ckpt_dir)
    if MODEL_FILE not in manifest["files"]:
        raise CheckpointError(f"{ckpt_dir / MANIFEST}: lists no {MODEL_FILE}")
    for fname, info in manifest["files"].items():
        if files is not None and fname not in files:
            continue
        if "/" in fname or fname.startswith("."):
            raise CheckpointError(f"{ckpt_dir / MANIFEST}: suspicious file name {fname!r}")
        fpath = ckpt_dir / fname
        if not fpath.is_file():
            raise CheckpointError(f"{fpath} is missing")
        size = fpath.stat().st_size
        if size != info.get("bytes"):
            raise CheckpointError(f"{fpath} has {size} bytes, the manifest says {info.get('bytes')} (truncated or edited)")
        if _sha256(fpath) != info.get("sha256"):
            raise CheckpointError(f"{fpath} does not match its sha256 in the manifest (corrupt or edited)")
    check_sealed(ckpt_dir, manifest)
    return manifest


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


def check_model_config(saved: dict[str, Any], current: ModelConfig, where: Path) -> None:
    """Raise if a checkpoint's model shape differs from the running model's."""
    cur = current.to_dict()
    ignore = {"dropout"}  # dropout changes no tensor shapes
    diffs = [
        f"checkpoint has {k}={saved.get(k)!r}, this run has {cur[k]!r}"
        for k in cur
        if k not in ignore and saved.get(k) != cur[k]
    ]
    if diffs:
        raise CheckpointError(f"{where} does not fit this model: " + "; ".join(diffs))


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    """Strict load with a clear message instead of PyTorch's long error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise CheckpointError(
            f"{where}: weights do not match the model (missing: {', '.join(missing[:5]) or '-'}; "
            f"unexpected: {', '.join(extra[:5]) or '-'})"
        )
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"{where}: {k} has shape {tuple(v.shape)}, the model needs {tuple(own[k].shape)}")
    model.load_state_dict(state)


# ------------------------------------------------------- training state in/out
@dataclass
class ResumePoint:
    """Where a run stands: what a checkpoint records beside the tensors, and a resume puts back."""

    step: int = 0
    epoch: int = 0  # 0-based index of the epoch in progress
    batch: int = 0  # optimizer steps done inside that epoch
    tokens_seen: int = 0
    steps_per_epoch: int | None = None
    best_val_loss: float = math.inf
    val_loss: float | None = None
    train_loss: float | None = None

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> "ResumePoint":
        pos = manifest["position"]
        return cls(step=pos["step"], epoch=pos["epoch"], batch=pos["batch"], tokens_seen=pos["tokens_seen"],
                   steps_per_epoch=pos.get("steps_per_epoch"),
                   best_val_loss=manifest.get("best_val_loss") or math.inf,
                   val_loss=manifest.get("val_loss"), train_loss=manifest.get("train_loss"))


def training_manifest(point: ResumePoint, *, model_config: ModelConfig, tokenizer: Any, train_config: dict[str, Any],
                      optimizer_meta: dict[str, Any], scaler_state: dict[str, Any] | None,
                      schedule: dict[str, Any], corpus: str, n_params: int, data_seed: int) -> dict[str, Any]:
    """Everything a checkpoint records besides its tensors (``save_checkpoint`` adds files, step, times)."""
    version, internal, gauss = random.getstate()
    return {
        "model_config": model_config.to_dict(),
        "tokenizer": tokenizer.describe(),
        "train_config": train_config,
        "optimizer": optimizer_meta,
        "scaler": scaler_state,
        "position": {"step": point.step, "epoch": point.epoch, "batch": point.batch,
                     "tokens_seen": point.tokens_seen, "steps_per_epoch": point.steps_per_epoch},
        "schedule": schedule,
        "best_val_loss": point.best_val_loss if math.isfinite(point.best_val_loss) else None,
        "train_loss": point.train_loss,
        "val_loss": point.val_loss,
        "rng": {"python": [version, list(internal), gauss], "data_seed": data_seed},
        "wall_time": time.time(),
        "n_params": n_params,
        "corpus": corpus,
    }


def rng_tensors(device: torch.device) -> dict[str, torch.Tensor]:
    """The RNG states a checkpoint keeps beside the optimizer state."""
    out = {"rng.torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["rng.cuda"] = torch.cuda.get_rng_state(device)
    return out


def apply_training_state(ckpt: Checkpoint, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                         scaler: Any, model_config: ModelConfig, device: torch.device,
                         steps_per_epoch: int) -> ResumePoint:
    """Put a checkpoint's weights, optimizer, scaler and RNG states into a live run; returns its position."""
    check_model_config(ckpt.manifest["model_config"], model_config, ckpt.path)
    load_model_state(model, {k: v.to(device) for k, v in ckpt.model.items()}, ckpt.path)
    opt = ckpt.optimizer
    if opt is None:
        raise CheckpointError(f"{ckpt.path} holds no optimizer state; it cannot be resumed (only sampled)")
    state = optimizer.state_dict()
    for saved_group, group in zip(opt["param_groups"], state["param_groups"]):
        for key in ("fused", "foreach", "capturable", "differentiable"):  # how this process runs, not state
            if key in group:
                saved_group[key] = group[key]
    optimizer.load_state_dict(opt)
    if scaler is not None and ckpt.manifest.get("scaler"):
        scaler.load_state_dict(ckpt.manifest["scaler"])
    point = ResumePoint.from_manifest(ckpt.manifest)
    if point.steps_per_epoch not in (None, steps_per_epoch) and point.batch:
        raise CheckpointError(
            f"{ckpt.path} was saved mid-epoch with {point.steps_per_epoch} steps per epoch; this run has "
            f"{steps_per_epoch} (batch size, data or world size changed)")
    if "rng.torch_cpu" in ckpt.rng:
        torch.set_rng_state(ckpt.rng["rng.torch_cpu"])
    if "rng.cuda" in ckpt.rng and device.type == "cuda":
        torch.cuda.set_rng_state(ckpt.rng["rng.cuda"], device)
    py = ckpt.manifest.get("rng", {}).get("python")
    if py:
        random.setstate((py[0], tuple(py[1]), py[2]))
    point.steps_per_epoch = steps_per_epoch
    return point


def load_for_inference(path: str | Path, device: str = "cpu"):
    """Load a checkpoint's model (eval mode) and tokenizer for sampling.

    Returns ``(model, tokenizer, manifest)``.
    """
    from gptmini.model import GPT
    from gptmini.tokenizer import tokenizer_from_description

    ckpt = load_checkpoint(path, device="cpu", with_optimizer=False)
    try:
        cfg = ckpt.model_config
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{ckpt.path / MANIFEST}: invalid model config ({exc})") from None
    with torch.device("meta"):
        model = GPT(cfg)
    model = model.to_empty(device="cpu")
    load_model_state(model, ckpt.model, ckpt.path)
    model = model.to(device).eval()
    tokenizer = tokenizer_from_description(ckpt.manifest["tokenizer"])
    return model, tokenizer, ckpt.manifest


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


def find_runs(root: str | Path) -> list[Path]:
    """Run folders under ``root`` (``root`` itself if it is one)."""
    root = Path(root)
    if any(root.glob(f"{_PREFIX}*/{MANIFEST}")):
        return [root]
    return sorted({p.parent.parent for p in root.glob(f"*/{_PREFIX}*/{MANIFEST}")})


def export_weights(path: str | Path, out_file: str | Path) -> Path:
    """Write a checkpoint's model weights (vocab padding removed) to one safetensors file."""
    ckpt = load_checkpoint(path, with_optimizer=False)
    cfg = ckpt.model_config
    tensors = dict(ckpt.model)
    for key in ("wte.weight", "lm_head.weight"):
        if key in tensors:
            tensors[key] = tensors[key][: cfg.vocab_size].contiguous()
    out = Path(out_file)
    if out.suffix != ".safetensors":
        raise CheckpointError(f"--out must end in .safetensors, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    metadata = {"model_config": json.dumps(cfg.to_dict()), "tokenizer": json.dumps(ckpt.manifest.get("tokenizer")),
                "step": str(ckpt.step), "format": "gptmini-weights"}
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out

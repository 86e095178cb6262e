"""What a checkpoint records about a live run besides its tensors, and how a resume (or a sampler) puts it
back: the position in the data, the schedule, the RNG states, the weights into a model."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gptmini.ckpt.layout import MANIFEST
from gptmini.ckpt.optim_state import flatten_optimizer_state
from gptmini.ckpt.store import Checkpoint, load_checkpoint
from gptmini.errors import CheckpointError
from gptmini.model.config import ModelConfig
from gptmini.model.lora import LoRAConfig, apply_lora


def live_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               partial: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What a save copies: the live model and optimizer tensors (no copies), prefixed ``model.`` /
    ``optim.``, and the optimizer's JSON-able metadata. ``partial``: of the model, only what trains (LoRA's
    adapters, a classifier's last layers and head); the frozen rest is the base weights file, named in the
    manifest by its sha256."""
    trains = {name for name, p in model.named_parameters() if p.requires_grad}
    sources = {f"model.{k}": v for k, v in model.state_dict().items() if not partial or k in trains}
    opt_tensors, opt_meta = flatten_optimizer_state(optimizer.state_dict())
    sources.update({f"optim.{k}": v for k, v in opt_tensors.items()})
    return sources, opt_meta



def check_model_config(saved: dict[str, Any], current: ModelConfig, where: Path) -> None:
    """Raise if a checkpoint's model shape differs from the running model's."""
    cur = current.to_dict()
    saved = {**ModelConfig.field_defaults(), **saved}  # fields added since the checkpoint was written
    ignore = {"dropout"}  # dropout changes no tensor shapes
    diffs = [
        f"checkpoint has {k}={saved.get(k)!r}, this run has {cur[k]!r}"
        for k in cur
        if k not in ignore and saved.get(k) != cur[k]
    ]
    if diffs:
        raise CheckpointError(f"{where} does not fit this model: " + "; ".join(diffs))


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: Path,
                     base_keys: frozenset[str] = frozenset()) -> None:
    """Strict load with a clear message instead of PyTorch's long error; ``base_keys``: weights the model
    already holds from its base, which a partial checkpoint leaves out."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state) - base_keys)
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise CheckpointError(
            f"{where}: weights do not match the model (missing: {', '.join(missing[:5]) or '-'}; "
            f"unexpected: {', '.join(extra[:5]) or '-'})"
        )
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"{where}: {k} has shape {tuple(v.shape)}, the model needs {tuple(own[k].shape)}")
    model.load_state_dict(state, strict=not base_keys)


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
                      schedule: dict[str, Any], corpus: str, n_params: int, data_seed: int,
                      task: dict[str, Any], lora: dict[str, Any] | None = None,
                      base: dict[str, Any] | None = None) -> dict[str, Any]:
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
        "task": task,  # what the run trains for (``Task.describe()``); checkpoints before tasks: pre-training
        "lora": lora,  # the adapters' rank, alpha and targets (None: no LoRA)
        "base": base,  # the weights file the adapters sit on (``InitWeights.describe()``); None: all saved here
    }


def rng_tensors(device: torch.device) -> dict[str, torch.Tensor]:
    """The RNG states a checkpoint keeps beside the optimizer state."""
    out = {"rng.torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["rng.cuda"] = torch.cuda.get_rng_state(device)
    return out


def apply_training_state(ckpt: Checkpoint, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                         scaler: Any, model_config: ModelConfig, device: torch.device,
                         steps_per_epoch: int, base_keys: frozenset[str] = frozenset()) -> ResumePoint:
    """Put a checkpoint's weights, optimizer, scaler and RNG states into a live run; returns its position."""
    check_model_config(ckpt.manifest["model_config"], model_config, ckpt.path)
    load_model_state(model, {k: v.to(device) for k, v in ckpt.model.items()}, ckpt.path, base_keys)
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
    from gptmini.model.gpt import GPT
    from gptmini.text.tokenizer import tokenizer_from_description

    ckpt = load_checkpoint(path, device="cpu", with_optimizer=False)
    try:
        cfg = ckpt.model_config
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{ckpt.path / MANIFEST}: invalid model config ({exc})") from None
    with torch.device("meta"):
        model = GPT(cfg)
    model = model.to_empty(device="cpu")
    base, base_keys = ckpt.manifest.get("base"), frozenset()
    if base is not None:  # a partial checkpoint holds what trained; the frozen rest is the base weights file
        from gptmini.interop.init import load_base, open_base

        base_keys = load_base(model, open_base(base, ckpt.path).state(cfg), ckpt.path)
    if ckpt.manifest.get("lora"):
        apply_lora(model, LoRAConfig(**ckpt.manifest["lora"]))
    load_model_state(model, ckpt.model, ckpt.path, base_keys)
    model = model.to(device).eval()
    tokenizer = tokenizer_from_description(ckpt.manifest["tokenizer"])
    return model, tokenizer, ckpt.manifest



def task_name(manifest: dict[str, Any]) -> str:
    """What a checkpoint's run trained for (checkpoints from before tasks: pre-training)."""
    task = manifest.get("task")
    return task.get("name", "pretrain") if isinstance(task, dict) else (task or "pretrain")


@dataclass
class ExportModel:
    """A checkpoint's model as plain weights: LoRA adapters folded in, a partial checkpoint's base filled in."""

    path: Path  # the checkpoint folder
    state: dict[str, torch.Tensor]  # a plain GPT's state dict
    config: ModelConfig  # untied where a merged head adapter made the head differ from the embedding
    tokenizer: Any
    manifest: dict[str, Any]

    @property
    def task(self) -> str:
        return task_name(self.manifest)

    @property
    def step(self) -> int:
        return int(self.manifest["step"])


def model_for_export(path: str | Path) -> ExportModel:
    """The weights every export writes (``gptmini export``: weights, hf, gguf; the PEFT adapter aside)."""
    from gptmini.ckpt.store import resolve_checkpoint
    from gptmini.model.lora import merged_state

    model, tokenizer, manifest = load_for_inference(path)
    state, untied = merged_state(model)
    cfg = model.config.with_overrides(tie_weights=False) if untied else model.config
    return ExportModel(resolve_checkpoint(path), state, cfg, tokenizer, manifest)

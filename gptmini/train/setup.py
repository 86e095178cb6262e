"""Building a run from its options: device and precision, the data, the model's shape, the form it
trains in, the run folder and its ``config.json``. Called once by ``Trainer.run()`` on the training thread, before the
first step; each function is usable alone (a notebook can build a run's data or model this way).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gptmini.ckpt.files import write_json_atomic
from gptmini.ckpt.state import check_model_config
from gptmini.ckpt.store import Checkpoint
from gptmini.interop.init import InitWeights, init_model_config, load_base
from gptmini.model.config import ModelConfig
from gptmini.model.gpt import GPT
from gptmini.model.lora import LoRAConfig, apply_lora
from gptmini.train.device import resolve_device, setup_backends
from gptmini.train.distributed import Ranks
from gptmini.train.plan import RunPlan, explicit_model_options, model_config_for
from gptmini.train_config import TrainConfig

if TYPE_CHECKING:
    from gptmini.tasks.base import Task


def choose_device(cfg: TrainConfig, ranks: Ranks) -> torch.device:
    """The device this process trains on (its own GPU under torchrun)."""
    device = resolve_device(cfg.device)
    if ranks.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    setup_backends(device)
    return device


def run_model_config(cfg: TrainConfig, vocab_size: int, resume: Checkpoint | None,
                     init: InitWeights | None = None) -> ModelConfig:
    """The model a run builds: on resume the checkpoint's (dims flags given explicitly must match it),
    the shape of the model ``--init-from`` names (``init``), else the preset's with the dims flags."""
    if init is not None and resume is None:
        return init_model_config(cfg, vocab_size, init)
    saved = dict(resume.manifest["model_config"]) if resume is not None else None
    model_cfg = model_config_for(cfg, vocab_size, saved)
    if saved is not None and explicit_model_options(cfg):
        wanted = model_config_for(cfg, vocab_size)
        check_model_config(saved, wanted.with_overrides(dropout=model_cfg.dropout), resume.path)
    return model_cfg


def lora_config(cfg: TrainConfig) -> LoRAConfig | None:
    """The adapters a run trains (``--lora-rank``), or None: every weight trains."""
    return LoRAConfig(cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets) if cfg.lora_rank else None


def build_model(model_cfg: ModelConfig, device: torch.device, init: InitWeights | None, lora: LoRAConfig | None,
                task: Task) -> tuple[GPT, frozenset[str]]:
    """The run's model (initialised from the RNG the caller seeded): the base weights ``--init-from`` names,
    LoRA's adapters, and the task's choice of what trains. Returns it and the names the base filled in."""
    model = GPT(model_cfg).to(device)
    base_keys: frozenset[str] = frozenset()
    if init is not None:
        base_keys = load_base(model, {k: v.to(device) for k, v in init.state(model_cfg).items()}, init.spec)
    if lora is not None:
        apply_lora(model, lora)
    task.adapt(model)  # a classifier's last layers and new head
    return model, base_keys


def trained_form(model: torch.nn.Module, compile_model: bool, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """The model as the step calls it: compiled and/or wrapped for torchrun (the same weights)."""
    fwd = torch.compile(model) if compile_model else model
    if ranks.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        fwd = DDP(fwd, device_ids=[device.index] if device.type == "cuda" else None)
    return fwd


def run_dir_for(cfg: TrainConfig, resume: Checkpoint | None) -> Path:
    """``--out``; else the resumed checkpoint's run folder; else ``checkpoints/<run name>``."""
    if cfg.out:
        return Path(cfg.out)
    if resume is not None:
        return resume.path.parent
    return Path("checkpoints") / (cfg.run_name or f"{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}")


def write_run_config(run_dir: Path, *, config: TrainConfig, model_config: ModelConfig, tokenizer: Any, plan: RunPlan,
                     device: torch.device, dtype: str, world_size: int, task: Task,
                     resumed: dict[str, Any] | None = None, init: dict[str, Any] | None = None) -> None:
    """``config.json``: the options the run trains with, every number they resolved to, and (``resumed``)
    the checkpoint it continued and the options that changed then."""
    write_json_atomic(run_dir / "config.json", {
        "init": init,
        "resumed": resumed,
        "task": task.describe(),
        "train": config.to_dict(),
        "model": model_config.to_dict(),
        "tokenizer": tokenizer.describe() if tokenizer.name != "char" else {"name": "char"},
        "resolved": {
            "lr": plan.lr, "min_lr": plan.min_lr, "warmup_steps": plan.warmup_steps,
            "lr_decay_steps": plan.decay_steps, "total_steps": plan.total_steps,
            "steps_per_epoch": plan.steps_per_epoch, "optimizer": plan.optimizer, "device": str(device),
            "dtype": dtype,
            "world_size": world_size, "corpus": task.summary.name, "corpus_bytes": task.summary.n_bytes,
        },
    })

"""What a run will do, resolved from its options before the first step: pure functions, no torch.

``TrainConfig`` holds what the user asked for, with ``None`` meaning "the default". ``plan_run``
turns it, plus what only the data and the device can tell (batches per epoch, world size, device
type), into a frozen ``RunPlan`` with every number filled in: the one place the learning-rate
defaults, the schedule lengths and the step/epoch arithmetic are decided. The engine, ``config.json``
and the checkpoint manifests all read the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptmini.errors import ConfigError, CorpusError
from gptmini.fmt import option_value
from gptmini.model.config import ModelConfig
from gptmini.options import BY_NAME, FIXED_ON_RESUME
from gptmini.presets import preset_config, preset_default
from gptmini.train_config import TrainConfig

MODEL_DIM_OPTIONS = ("n_layers", "n_heads", "d_model", "context", "bias")  # checked against the saved model


@dataclass(frozen=True)
class RunPlan:
    lr: float
    min_lr: float
    warmup_steps: int
    decay_steps: int
    total_steps: int
    steps_per_epoch: int
    n_epochs: int
    log_interval: int
    compile: bool
    optimizer: str
    eval_interval: int
    save_interval: int

    def evaluates_after(self, step: int, epoch_end: bool) -> bool:
        """Is the validation loss measured after optimizer step ``step``?"""
        return epoch_end or step % self.eval_interval == 0 or step == self.total_steps

    def save_reason(self, step: int, epoch_end: bool, improved: bool) -> str | None:
        """Why a checkpoint is saved after step ``step`` ("best+epoch", "interval", "final", ...), or None."""
        reasons = [name for name, due in (("best", improved and step > 0), ("epoch", epoch_end),
                                          ("interval", step % self.save_interval == 0),
                                          ("final", step == self.total_steps)) if due]
        return "+".join(reasons) or None

    def schedule(self) -> dict[str, Any]:
        """The learning-rate schedule as recorded in ``config.json`` and each manifest."""
        return {"lr": self.lr, "min_lr": self.min_lr, "warmup_steps": self.warmup_steps,
                "decay_steps": self.decay_steps, "total_steps": self.total_steps}


def default_lr(cfg: TrainConfig) -> float:
    """``--lr``, else the preset's (``presets.preset_default``: its recipe's at its own width, else nanoGPT's
    two rates by width)."""
    if cfg.lr is not None:
        return cfg.lr
    return preset_default("lr", cfg.preset, task=cfg.task, d_model=cfg.d_model).value


def default_optimizer(cfg: TrainConfig) -> str:
    """``--optimizer``, else AdamW for LoRA's adapters, else the task's or the preset's recipe, else the general
    one (AdamW)."""
    if cfg.optimizer or cfg.lora_rank:
        return cfg.optimizer or "adamw"
    return preset_default("optimizer", cfg.preset, task=cfg.task).value


def default_warmup(cfg: TrainConfig, total_steps: int) -> int:
    """``--warmup-steps``, else a share of the run up to the preset's cap."""
    if cfg.warmup_steps is not None:
        return cfg.warmup_steps
    return preset_default("warmup_steps", cfg.preset, total_steps=total_steps).value


def plan_run(cfg: TrainConfig, *, batches_per_epoch: int, device_type: str) -> RunPlan:
    """Every number of the run; ``batches_per_epoch`` counts this process's micro-batches."""
    steps_per_epoch = batches_per_epoch // cfg.grad_accum
    if steps_per_epoch < 1:
        raise CorpusError(
            f"one epoch has only {batches_per_epoch} batches of {cfg.batch_size} per process, "
            f"fewer than --grad-accum {cfg.grad_accum}; lower --grad-accum or --batch-size, or add text")
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    lr = default_lr(cfg)
    return RunPlan(
        lr=lr,
        min_lr=cfg.min_lr if cfg.min_lr is not None else lr / 10,
        warmup_steps=default_warmup(cfg, total_steps),
        decay_steps=cfg.lr_decay_steps or total_steps,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        n_epochs=math.ceil(total_steps / steps_per_epoch),
        log_interval=cfg.log_interval or (1 if device_type == "cpu" else 10),
        compile=cfg.compile if cfg.compile is not None else device_type == "cuda",
        optimizer=default_optimizer(cfg),
        eval_interval=cfg.eval_interval,
        save_interval=cfg.save_interval,
    )


def model_config_for(cfg: TrainConfig, vocab_size: int, saved: dict[str, Any] | None = None) -> ModelConfig:
    """The model a run builds: from the preset and dims flags, or, on resume, the checkpoint's own.

    On resume only ``--dropout`` may change the saved shape's settings; a dims flag or ``--preset``
    given explicitly must agree with the checkpoint (``CheckpointError`` otherwise, raised by the
    caller through ``check_model_config``).
    """
    if saved is None:
        return preset_config(cfg.preset, vocab_size, **cfg.model_overrides())
    values = dict(saved)
    if cfg.dropout is not None:
        values["dropout"] = cfg.dropout
    return ModelConfig.from_dict(values)


def explicit_model_options(cfg: TrainConfig) -> bool:
    """Did the user name the model's shape (a dims flag or ``--preset``) on the command line?"""
    return any(k in cfg.explicit for k in MODEL_DIM_OPTIONS) or "preset" in cfg.explicit


def saved_optimizer(manifest: dict[str, Any]) -> str:
    """The optimizer a checkpoint's run trained with (runs from before ``--optimizer`` used AdamW)."""
    return (manifest.get("train_config") or {}).get("optimizer") or "adamw"


def resume_config(cfg: TrainConfig, manifest: dict[str, Any]) -> TrainConfig:
    """The checkpoint's training options, overridden by those the user set explicitly."""
    base = dict(manifest.get("train_config") or {})
    schedule = manifest.get("schedule") or {}
    for name in ("lr", "warmup_steps"):  # as the run resolved them: later defaults must not change its schedule
        if base.get(name) is None and schedule.get(name) is not None:
            base[name] = schedule[name]
    base["optimizer"] = saved_optimizer(manifest)
    for name in cfg.explicit:
        base[name] = getattr(cfg, name)
    base["resume"] = cfg.resume
    if "out" not in cfg.explicit:
        base["out"] = None
    return TrainConfig.from_dict(base, explicit=cfg.explicit)


def resume_changes(cfg: TrainConfig, manifest: dict[str, Any]) -> dict[str, list[Any]]:
    """The options given on resume that differ from the checkpoint's: ``{name: [old, new]}``.

    Options the checkpoint fixes (its data, tokenizer, split, seed; the model's shape is compared with
    the saved model itself) raise one ``ConfigError`` naming each difference: continuing with them
    changed would silently train another run.
    """
    saved = dict(manifest.get("train_config") or {})
    saved_tokenizer = (manifest.get("tokenizer") or {}).get("name")
    changes: dict[str, list[Any]] = {}
    for name in cfg.explicit:
        if name not in BY_NAME or name == "resume":
            continue
        old, new = saved.get(name), getattr(cfg, name)
        if name == "tokenizer":
            old, new = saved_tokenizer, cfg.tokenizer_name
        if name == "optimizer":
            old = saved_optimizer(manifest)
        if name == "task":  # runs from before tasks were pre-training runs
            old = old or "pretrain"
        if not _same(name, old, new):
            changes[name] = [old, new]
    fixed = [n for n in changes if n in FIXED_ON_RESUME and n not in MODEL_DIM_OPTIONS + ("preset",)]
    if fixed:
        said = "; ".join(f"{BY_NAME[n].flag} was {option_value(changes[n][0])}, now {option_value(changes[n][1])}"
                         for n in fixed)
        raise ConfigError(
            f"--resume continues a run exactly, and its checkpoint fixes {', '.join(BY_NAME[n].flag for n in fixed)} "
            f"({said}); drop {'them' if len(fixed) > 1 else 'it'}, or start a new run")
    return changes


def _same(name: str, old: Any, new: Any) -> bool:
    if name == "data" and old and new:  # the same files, however they were written
        def resolved(paths):
            return [str(Path(p).expanduser().resolve()) for p in paths]

        return resolved(old) == resolved(new) or [Path(p).name for p in old] == [Path(p).name for p in new]
    return old == new

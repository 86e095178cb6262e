"""The optimizers (AdamW with GPT-2 style weight-decay groups, or Muon for the hidden matrices with AdamW
for the rest) and the learning-rate schedule."""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

from gptmini.errors import CheckpointError
from gptmini.options import OPTIMIZERS
from gptmini.train.muon import Muon, newton_schulz_dtype


def make_optimizer(
    model: torch.nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.95),
    device_type: str = "cpu",
    kind: str = "adamw",
) -> torch.optim.AdamW | MuonAdamW:
    """``adamw``: every parameter by AdamW, decaying only matrices (>= 2-D weights); biases and LayerNorm
    gains are not decayed. ``muon``: the blocks' matrices by Muon, the rest by that AdamW."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    hidden = [p for n, p in named if kind == "muon" and p.dim() == 2 and n.startswith("h.")]
    rest = [p for n, p in named if not any(p is q for q in hidden)]
    groups = [
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
    ]
    # The fused kernel updates every tensor in one pass: on CUDA as in nanoGPT, and on CPU too, where the
    # default per-tensor loop costs far more than the math (measured: 1.5 ms vs 1.2 s per step for the
    # cpu-demo model on this 2-core machine under load; see bench/README.md).
    extra = {}
    if device_type in ("cuda", "cpu") and "fused" in inspect.signature(torch.optim.AdamW).parameters:
        extra["fused"] = True
    adamw = torch.optim.AdamW(groups, lr=lr, betas=betas, **extra)
    if kind == "adamw":
        return adamw
    if kind != "muon":
        raise ValueError(f"unknown optimizer {kind!r}; choose one of: {', '.join(OPTIMIZERS)}")
    # Muon scales each matrix's orthogonalised update to AdamW's size, so one learning rate (and its
    # schedule) serves both (Moonshot, "Muon is Scalable for LLM Training").
    device = hidden[0].device if hidden else torch.device(device_type)
    muon = Muon(hidden, lr=lr, weight_decay=weight_decay, ns_dtype=newton_schulz_dtype(device))
    return MuonAdamW(adamw, muon)


class MuonAdamW:
    """Two optimizers stepped as one: AdamW's groups, then Muon's. ``param_groups`` lists all of them (the
    learning-rate schedule sets each), and ``state_dict`` is one optimizer's state dict in PyTorch's format,
    each group tagged with the optimizer it belongs to, so checkpoints save and resume it like any other."""

    NAMES = ("adamw", "muon")

    def __init__(self, adamw: torch.optim.Optimizer, muon: torch.optim.Optimizer) -> None:
        self.optimizers = (adamw, muon)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def state_dict(self) -> dict[str, Any]:
        groups: list[dict[str, Any]] = []
        state: dict[int, Any] = {}
        offset = 0
        for name, opt in zip(self.NAMES, self.optimizers):
            sd = opt.state_dict()
            groups += [{**g, "optimizer": name, "params": [i + offset for i in g["params"]]}
                       for g in sd["param_groups"]]
            state.update({i + offset: s for i, s in sd["state"].items()})
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict["param_groups"]
        if [g.get("optimizer") for g in groups] != [n for n, o in zip(self.NAMES, self.optimizers)
                                                    for _ in o.param_groups]:
            raise CheckpointError("this checkpoint's optimizer state is not Muon + AdamW's (--optimizer muon)")
        offset = 0
        for name, opt in zip(self.NAMES, self.optimizers):
            mine = [g for g in groups if g["optimizer"] == name]
            ids = [i for g in mine for i in g["params"]]
            opt.load_state_dict({
                "param_groups": [{**{k: v for k, v in g.items() if k != "optimizer"},
                                  "params": [i - offset for i in g["params"]]} for g in mine],
                "state": {i - offset: state_dict["state"][i] for i in ids if i in state_dict["state"]},
            })
            offset += len(ids)


def lr_at(step: int, lr: float, min_lr: float, warmup_steps: int, decay_steps: int) -> float:
    """Learning rate for the optimizer step with 0-based index ``step``.

    Linear warmup to ``lr`` over ``warmup_steps``, then cosine decay to
    ``min_lr`` at ``decay_steps``, then ``min_lr``.
    """
    if step < warmup_steps:
        return lr * (step + 1) / (warmup_steps + 1)
    if step >= decay_steps:
        return min_lr
    ratio = (step - warmup_steps) / max(1, decay_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def clip_gradients(model: torch.nn.Module, clip: float, device: torch.device) -> torch.Tensor:
    """Total gradient norm (reported every step); rescale the gradients when it exceeds ``clip``.

    Same math as ``clip_grad_norm_``, which always multiplies by ``min(clip / (norm + 1e-6), 1)`` so
    that a GPU never waits for the norm. On the CPU there is nothing to wait for, so the no-op
    multiply by 1 (a full pass over every gradient) is skipped, and with ``clip`` 0 it never runs.
    """
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    if clip > 0 and (device.type != "cpu" or float(norm) + 1e-6 > clip):
        torch.nn.utils.clip_grads_with_norm_(params, clip, norm)
    return norm

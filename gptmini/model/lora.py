"""LoRA, as the book's appendix E writes it: a frozen linear layer plus a trained low-rank update,
``y = W x + b + alpha * (x A) B``, with ``A`` kaiming-uniform and ``B`` zero (so training starts from the
base model exactly). The book scales by ``alpha`` alone; PEFT by ``lora_alpha / r``: an adapter of rank
``r`` and alpha ``a`` here is PEFT's ``lora_alpha = a * r``.

``apply_lora`` freezes the model and puts adapters on the layers ``targets`` names: ``attn`` (q, k, v and
the attention's output projection; GPTMini's fused ``c_attn`` gets one adapter per q, k, v slice, as the
book's three separate layers do), ``mlp`` (both MLP layers), or ``all`` (both, and the output head). The
weights keep their names (``h.0.attn.c_attn.weight``); the adapters are ``...lora_A`` / ``...lora_B`` and
``head_lora.lora_A`` / ``.lora_B``. ``merged_state`` folds the adapters into plain weights.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

TARGETS = ("attn", "mlp", "all")


@dataclass(frozen=True)
class LoRAConfig:
    rank: int
    alpha: float
    targets: str = "all"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Adapter:
    """The low-rank update ``alpha * (x A) B`` for ``splits`` equal slices of the output, each with its own
    ``A`` (in, rank) and ``B`` (rank, out / splits): parameters ``lora_A`` and ``lora_B``."""

    lora_A: nn.Parameter
    lora_B: nn.Parameter
    alpha: float

    def _init_adapter(self, in_features: int, out_features: int, rank: int, alpha: float, splits: int,
                      device: torch.device | None) -> None:
        self.alpha = alpha
        self.lora_A = nn.Parameter(torch.empty(splits, in_features, rank, device=device))
        self.lora_B = nn.Parameter(torch.zeros(splits, rank, out_features // splits, device=device))
        for part in self.lora_A:  # the book's init of each (in, rank) matrix
            nn.init.kaiming_uniform_(part, a=math.sqrt(5))

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        if self.lora_A.shape[0] == 1:
            return self.alpha * (x @ self.lora_A[0] @ self.lora_B[0])
        xa = torch.einsum("...i,sir->...sr", x, self.lora_A)
        return self.alpha * torch.einsum("...sr,sro->...so", xa, self.lora_B).flatten(-2)

    def weight_delta(self) -> torch.Tensor:
        """The update as an ``nn.Linear`` weight (out, in)."""
        return self.alpha * torch.cat([(a @ b).t() for a, b in zip(self.lora_A, self.lora_B)])


class LoRADelta(Adapter, nn.Module):
    """An adapter alone: the output head's, added to the logits (the head may be the tied token embedding)."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float,
                 device: torch.device | None = None) -> None:
        nn.Module.__init__(self)
        self._init_adapter(in_features, out_features, rank, alpha, 1, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.delta(x)

    def factors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha * x A, B.T)``: the update is their product ``(alpha * x A) @ B`` (``model.head_loss``)."""
        return self.alpha * (x @ self.lora_A[0]), self.lora_B[0].t()


class LoRALinear(Adapter, nn.Linear):
    """An ``nn.Linear`` whose weight and bias are frozen and keep their names, plus an adapter."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, splits: int = 1) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        self._init_adapter(base.in_features, base.out_features, rank, alpha, splits, base.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + self.delta(x).to(x.dtype)


def adapted_layers(model: nn.Module, targets: str) -> list[tuple[str, int]]:
    """``(name, splits)`` of the linear layers ``targets`` puts adapters on (the head is not a layer here)."""
    out = []
    for i, _ in enumerate(model.h):
        if targets in ("attn", "all"):
            out += [(f"h.{i}.attn.c_attn", 3), (f"h.{i}.attn.c_proj", 1)]
        if targets in ("mlp", "all"):
            out += [(f"h.{i}.mlp.c_fc", 1), (f"h.{i}.mlp.c_proj", 1)]
    return out


def apply_lora(model: nn.Module, cfg: LoRAConfig) -> nn.Module:
    """Freeze ``model`` and give the layers ``cfg.targets`` names trainable adapters (in place)."""
    if cfg.targets not in TARGETS:
        raise ValueError(f"LoRA targets must be one of {', '.join(TARGETS)}, got {cfg.targets!r}")
    model.requires_grad_(False)
    for name, splits in adapted_layers(model, cfg.targets):
        parent, _, child = name.rpartition(".")
        holder = model.get_submodule(parent)
        setattr(holder, child, LoRALinear(getattr(holder, child), cfg.rank, cfg.alpha, splits))
    if cfg.targets == "all" and model.score is None:  # a classifier's new head trains whole (the task's choice)
        head = model.wte.weight if model.lm_head is None else model.lm_head.weight
        model.head_lora = LoRADelta(model.config.d_model, head.shape[0], cfg.rank, cfg.alpha, head.device)
    return model


def is_adapter(name: str) -> bool:
    return ".lora_" in name or name.startswith("head_lora.")


@torch.no_grad()
def merged_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], bool]:
    """``model``'s weights with every adapter folded in, as a plain GPT's state dict, and whether the head is
    now untied (an adapted head differs from the token embedding: it becomes ``lm_head.weight``)."""
    state = {k: v for k, v in model.state_dict().items() if not is_adapter(k)}
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            state[f"{name}.weight"] = module.weight + module.weight_delta().to(module.weight.dtype)
    head_lora = getattr(model, "head_lora", None)
    if head_lora is None:
        return state, False
    head = model.wte.weight if model.lm_head is None else model.lm_head.weight
    state["lm_head.weight"] = head + head_lora.weight_delta().to(head.dtype)
    return state, True


def count_trainable(model: nn.Module) -> int:
    """Trainable parameters as the tokenizer's vocabulary sees them (the head adapter's padding columns, which
    never train, left out)."""
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    head_lora = getattr(model, "head_lora", None)
    if head_lora is not None and head_lora.lora_B.requires_grad:
        cfg = model.config
        n -= (cfg.padded_vocab_size - cfg.vocab_size) * head_lora.lora_B.shape[1]
    return n

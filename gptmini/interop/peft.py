"""A LoRA run's adapters alone, as a PEFT adapter folder (``gptmini export RUN --format peft --out DIR``):
``adapter_model.safetensors`` + ``adapter_config.json`` that ``peft.PeftModel.from_pretrained`` loads onto
the base model exported for transformers (``gptmini export BASE --format hf``), giving the same logits.

GPTMini's adapters map onto PEFT's one for one, with two translations. PEFT scales an adapter by
``lora_alpha / r`` where the book scales by ``alpha``: the config says ``lora_alpha = alpha * r``. And GPT-2's
fused ``c_attn`` has one PEFT adapter where GPTMini (as the book) keeps one per q, k and v: the three become
one adapter of rank ``3r`` whose ``B`` is block-diagonal (``rank_pattern`` / ``alpha_pattern`` say so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from gptmini.ckpt.files import write_folder_atomic
from gptmini.errors import CheckpointError, ConfigError

FILES = ("adapter_model.safetensors", "adapter_config.json")
MODULES = {"attn": ("attn.c_attn", "attn.c_proj"), "mlp": ("mlp.c_fc", "mlp.c_proj")}


def peft_tensors(state: dict[str, torch.Tensor], n_layers: int, vocab_size: int) -> dict[str, torch.Tensor]:
    """GPTMini's adapter tensors (``h.0.attn.c_attn.lora_A`` (splits, in, r), ``lora_B`` (splits, r, out/splits),
    ``head_lora.*``) under PEFT's names and in its shapes (``lora_A.weight`` (r, in), ``lora_B.weight`` (out, r))."""
    out: dict[str, torch.Tensor] = {}
    prefix = "base_model.model."
    names = [(f"h.{i}.{module}", f"transformer.h.{i}.{module}") for i in range(n_layers)
             for module in MODULES["attn"] + MODULES["mlp"]] + [("head_lora", "lm_head")]
    for ours, theirs in names:
        if f"{ours}.lora_A" not in state:
            continue
        a, b = state[f"{ours}.lora_A"].float(), state[f"{ours}.lora_B"].float()  # (s, in, r), (s, r, out_s)
        if ours == "head_lora":
            b = b[..., :vocab_size]  # the padding columns never train
        splits, rank = a.shape[0], a.shape[2]
        lora_a = torch.cat([part.t() for part in a])  # (s*r, in)
        lora_b = torch.block_diag(*[part.t() for part in b])  # (out, s*r): q, k, v each from its own rank
        assert lora_a.shape[0] == splits * rank
        out[f"{prefix}{theirs}.lora_A.weight"] = lora_a.contiguous()
        out[f"{prefix}{theirs}.lora_B.weight"] = lora_b.contiguous()
    return out


def peft_config(lora: dict[str, Any], base: str, has_head: bool) -> dict[str, Any]:
    rank, alpha, targets = lora["rank"], lora["alpha"], lora["targets"]
    modules = [m for kind in ("attn", "mlp") if targets in (kind, "all") for m in MODULES[kind]]
    if has_head:
        modules.append("lm_head")
    fused = {"attn.c_attn": 3 * rank} if "attn.c_attn" in modules else {}
    return {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base, "inference_mode": True,
        "r": rank, "lora_alpha": alpha * rank, "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": True,
        "target_modules": modules, "rank_pattern": fused,
        "alpha_pattern": {name: alpha * r for name, r in fused.items()}, "modules_to_save": None,
    }


def export_peft(path: str | Path, out_dir: str | Path, *, force: bool = False) -> Path:
    """Write the LoRA adapters of the checkpoint at ``path`` as a PEFT adapter folder ``out_dir``."""
    from safetensors.torch import save_file

    from gptmini.ckpt.state import task_name
    from gptmini.ckpt.store import load_checkpoint

    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise ConfigError(f"--out {out} exists and is not an empty folder; pick a new one or pass --force")
    ckpt = load_checkpoint(path, with_optimizer=False)
    lora = ckpt.manifest.get("lora")
    if not lora:
        raise CheckpointError(f"{ckpt.path} has no LoRA adapters (train with --lora-rank); --format hf writes the "
                              f"whole model")
    if task_name(ckpt.manifest) == "classify":
        raise CheckpointError(f"{ckpt.path} is a classifier, whose new head is not an adapter; --format hf writes "
                              f"the merged classifier")
    cfg = ckpt.model_config
    adapters = {k: v for k, v in ckpt.model.items() if ".lora_" in k or k.startswith("head_lora.")}
    base = (ckpt.manifest.get("base") or {}).get("from") or "the base model: gptmini export BASE --format hf"

    def fill(folder: Path) -> None:
        save_file(peft_tensors(adapters, cfg.n_layers, cfg.vocab_size), str(folder / FILES[0]),
                  metadata={"format": "pt"})
        config = peft_config(lora, base, has_head="head_lora.lora_A" in adapters)
        (folder / FILES[1]).write_text(json.dumps(config, indent=2) + "\n")

    return write_folder_atomic(out, fill)

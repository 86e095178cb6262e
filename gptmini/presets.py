"""Named presets: a model's shape, the tokenizer it is meant for, and its training recipe where that is
not the general one."""

from __future__ import annotations

from typing import Any

from gptmini.model.config import ModelConfig

# Presets. ``vocab_size`` is filled in from the tokenizer when a run starts.
PRESETS: dict[str, dict[str, Any]] = {
    # Learns visibly in minutes on a 2-core CPU with the char tokenizer (nanoGPT's CPU context of 64;
    # trained at batch 32: PRESET_RECIPES).
    "cpu-demo": dict(context_length=64, n_layers=4, n_heads=4, d_model=128, dropout=0.0),
    # A little bigger, for a laptop with a few more cores or patience.
    "cpu-small": dict(context_length=256, n_layers=6, n_heads=6, d_model=192, dropout=0.1),
    # nanoGPT's shakespeare-char (for a GPU).
    "gpu-char": dict(context_length=256, n_layers=6, n_heads=6, d_model=384, dropout=0.2),
    # nanoGPT's CPU shakespeare-char settings.
    "nanogpt-cpu": dict(context_length=64, n_layers=4, n_heads=4, d_model=128, dropout=0.0),
    # GPT-2 small: 124,439,808 parameters with tied weights and vocab 50257.
    "gpt2-124m": dict(context_length=1024, n_layers=12, n_heads=12, d_model=768, dropout=0.0),
    # Raschka's GPT_CONFIG_124M (ch. 4/5): context 256, no qkv bias, dropout 0.1, an untied output head and
    # N(0, 1) embeddings as the book's model has (with GPT-2's tied 0.02 init the book's 90-step run on
    # the-verdict stalls near loss 5.7: bench/README.md, learning parity).
    "raschka-124m": dict(context_length=256, n_layers=12, n_heads=12, d_model=768, dropout=0.1, qkv_bias=False,
                         tie_weights=False, emb_init_std=1.0),
    "gpt2-medium": dict(context_length=1024, n_layers=24, n_heads=16, d_model=1024, dropout=0.0),
}

# Tokenizer each preset is meant for (a run may still choose another).
PRESET_TOKENIZER: dict[str, str] = {
    "cpu-demo": "char",
    "cpu-small": "char",
    "gpu-char": "char",
    "nanogpt-cpu": "char",
    "gpt2-124m": "gpt2",
    "raschka-124m": "gpt2",
    "gpt2-medium": "gpt2",
}


# The training recipe of a preset, where it is not the general one (AdamW; lr 1e-3 up to 384 wide, 6e-4
# above; warm-up 5 % of the run, at most 200 steps; batch 16). The console's default run learns fastest per
# second on a 2-core CPU with Muon at a higher rate, a short warm-up and 32 sequences of 64 characters per
# step (bench/README_demo.md); the presets that reproduce Raschka's book or nanoGPT keep their references'
# AdamW. plan.py reads the optimizer, lr and warm-up; the batch size is filled in when a TrainConfig is built.
PRESET_RECIPES: dict[str, dict[str, Any]] = {
    "cpu-demo": dict(optimizer="muon", lr=5e-3, warmup_steps=20, batch_size=32),
}


def default_batch_size(preset: str) -> int:
    """Sequences per micro-batch when ``--batch-size`` is not given: the preset's recipe, else 16."""
    return PRESET_RECIPES.get(preset, {}).get("batch_size", 16)


def preset_config(name: str, vocab_size: int = 50257, **overrides: Any) -> ModelConfig:
    """Build a ``ModelConfig`` from a named preset plus field overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    base = dict(PRESETS[name])
    base["vocab_size"] = vocab_size
    for key, value in overrides.items():
        if value is not None:
            base[key] = value
    return ModelConfig.from_dict(base)

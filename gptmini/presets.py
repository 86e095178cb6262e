"""Named presets: a model's shape, the tokenizer it is meant for, and its training recipe where that is
not the general one; and the one rule for each option a preset decides (``preset_default``: the value a
run uses, and the words ``--help`` and the new-run form show)."""

from __future__ import annotations

from dataclasses import dataclass
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

# Tokenizer each preset is meant for (a run may still choose another); a preset not named here: GPT-2's.
PRESET_TOKENIZER: dict[str, str] = {
    "cpu-demo": "char",
    "cpu-small": "char",
    "gpu-char": "char",
    "nanogpt-cpu": "char",
    "gpt2-124m": "gpt2",
    "raschka-124m": "gpt2",
    "gpt2-medium": "gpt2",
}
GENERAL_TOKENIZER = "gpt2"

# The general training recipe: AdamW, batches of 16, a warm-up of 1/WARMUP_SHARE of the run but at most
# 200 steps, and nanoGPT's two learning rates: NARROW_LR up to NARROW_UP_TO wide, WIDE_LR above.
GENERAL_RECIPE: dict[str, Any] = dict(optimizer="adamw", warmup_steps=200, batch_size=16)
WARMUP_SHARE = 20
NARROW_LR, WIDE_LR, NARROW_UP_TO = 1e-3, 6e-4, 384

# The training recipe of a preset, where it is not the general one. The console's default run learns
# fastest per second on a 2-core CPU with Muon at a higher rate, a short warm-up and 32 sequences of 64
# characters per step (bench/README_demo.md); the presets that reproduce Raschka's book or nanoGPT keep
# their references' AdamW. A recipe's lr holds at the preset's own width (--d-model: the general rates);
# its warmup_steps is a cap, as the general one's.
PRESET_RECIPES: dict[str, dict[str, Any]] = {
    "cpu-demo": dict(optimizer="muon", lr=5e-3, warmup_steps=20, batch_size=32),
}

# The recipe of a fine-tuning task, which takes the place of the preset's: the model comes pre-trained
# (--init-from), and the book fine-tunes it with AdamW at 5e-5 in batches of 8 (chapters 6 and 7).
TASK_RECIPES: dict[str, dict[str, Any]] = {
    "instruct": dict(optimizer="adamw", lr=5e-5, batch_size=8),
    "classify": dict(optimizer="adamw", lr=5e-5, batch_size=8),
}

# The options whose default (None) the preset decides: its shape (PRESETS), tokenizer and recipe.
_SHAPE = {"n_layers": "n_layers", "n_heads": "n_heads", "d_model": "d_model", "context": "context_length",
          "dropout": "dropout", "bias": "bias"}
PRESET_DEFAULTS: tuple[str, ...] = (*_SHAPE, "tokenizer", "batch_size", "lr", "warmup_steps", "optimizer")


@dataclass(frozen=True)
class PresetDefault:
    """What an option left unset resolves to for one preset, and why: ``5e-3 (cpu-demo recipe)``."""

    value: Any  # None for the warm-up when the run's length is not known yet
    why: str

    def __str__(self) -> str:
        return self.why if self.value is None else f"{shown(self.value)} ({self.why})"


def preset_default(name: str, preset: str, *, task: str = "pretrain", d_model: int | None = None,
                   total_steps: int | None = None) -> PresetDefault:
    """Option ``name``'s value when it is not given, for ``preset`` (one of ``PRESET_DEFAULTS``).

    ``d_model``: the ``--d-model`` given, if any (the learning rate follows the width); ``total_steps``:
    the run's length (the warm-up is a share of it). The training plan uses the value; ``--help`` and the
    new-run form the words (``describe_preset_default`` for every preset at once). A fine-tuning ``task``'s
    recipe (``TASK_RECIPES``) comes first.
    """
    if name in TASK_RECIPES.get(task, {}):
        return PresetDefault(TASK_RECIPES[task][name], f"{task} recipe")
    own = PRESET_RECIPES.get(preset, {})
    source = f"{preset} recipe" if name in own else "general recipe"
    if name == "lr":
        if "lr" in own and d_model is None:
            return PresetDefault(own["lr"], source)
        width = d_model or PRESETS[preset]["d_model"]
        return PresetDefault(NARROW_LR if width <= NARROW_UP_TO else WIDE_LR, f"{width} wide")
    if name == "warmup_steps":
        cap = own.get(name, GENERAL_RECIPE[name])
        if total_steps is None:
            return PresetDefault(None, f"1/{WARMUP_SHARE} of the run, at most {cap} ({source})")
        return PresetDefault(min(cap, total_steps // WARMUP_SHARE), source)
    if name in GENERAL_RECIPE:
        return PresetDefault(own.get(name, GENERAL_RECIPE[name]), source)
    if name == "tokenizer":
        return PresetDefault(PRESET_TOKENIZER.get(preset, GENERAL_TOKENIZER), preset)
    if name in _SHAPE:
        return PresetDefault(getattr(preset_config(preset, 256), _SHAPE[name]), preset)
    raise KeyError(f"the preset does not decide {name!r}")


def describe_preset_default(name: str) -> str:
    """Option ``name``'s default for every preset, in words for ``--help``: ``the preset's: cpu-demo 32, else 16``."""
    if name in _SHAPE:
        return "the preset's"
    if name == "tokenizer":
        return _rule({p: t for p, t in PRESET_TOKENIZER.items() if t != GENERAL_TOKENIZER}, GENERAL_TOKENIZER)
    own = {p: r[name] for p, r in PRESET_RECIPES.items() if name in r}
    if name == "lr":
        return _rule(own, f"{shown(NARROW_LR)} up to {NARROW_UP_TO} wide, {shown(WIDE_LR)} above", "; ",
                     "else, or with --d-model,")
    if name == "warmup_steps":
        return f"1/{WARMUP_SHARE} of the run, at most {_rule(own, GENERAL_RECIPE[name])} steps"
    return _rule(own, GENERAL_RECIPE[name])


def describe_task_default(name: str) -> str:
    """What the fine-tuning tasks use instead of the preset's, in words: ``instruct 5e-5``."""
    return ", ".join(f"{task} {shown(r[name])}" for task, r in TASK_RECIPES.items() if name in r)


def _rule(own: dict[str, Any], general: Any, sep: str = ", ", otherwise: str = "else") -> str:
    """``the preset's: cpu-demo 32, else 16``; presets sharing a value: ``char for cpu-demo, cpu-small, ...``."""
    groups: dict[Any, list[str]] = {}
    for preset, value in own.items():
        groups.setdefault(value, []).append(preset)
    if not groups:
        return shown(general)
    said = sep.join(f"{names[0]} {shown(v)}" if len(names) == 1 else f"{shown(v)} for {', '.join(names)}"
                    for v, names in groups.items())
    return f"the preset's: {said}{sep}{otherwise} {shown(general)}"


def default_batch_size(preset: str, task: str = "pretrain") -> int:
    """Sequences per micro-batch when ``--batch-size`` is not given: the task's or the preset's recipe, else the
    general one."""
    return preset_default("batch_size", preset, task=task).value


def shown(value: Any) -> str:
    """A default as ``--help`` and the new-run form write it: 5e-3, 0.1, 32, muon, on."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value and abs(value) < 0.01:
        mantissa, exponent = f"{value:e}".split("e")
        short = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return short if float(short) == value else repr(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


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

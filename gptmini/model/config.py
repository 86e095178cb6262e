"""Model configuration: one dataclass, named presets, and validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a GPT-2 style model.

    ``vocab_size`` is the tokenizer's vocabulary; the embedding table is padded
    internally to ``padded_vocab_size`` (a multiple of ``pad_vocab_multiple``)
    for faster matmuls. Padded rows are never sampled and never reported.
    """

    vocab_size: int = 50257
    context_length: int = 1024
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm layers, as GPT-2 has them
    qkv_bias: bool = True  # bias on the query/key/value projection (GPT-2: yes)
    tie_weights: bool = True  # LM head shares the token embedding matrix
    pad_vocab_multiple: int = 64
    emb_init_std: float = 0.02  # GPT-2's; Raschka's book keeps PyTorch's N(0, 1) embeddings
    n_classes: int = 0  # a classifier's labels: its head scores them instead of the vocabulary (0: a language model)

    def __post_init__(self) -> None:
        validate_model_config(self)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_outputs(self) -> int:
        """What the head scores: the classifier's labels, else the tokenizer's vocabulary."""
        return self.n_classes or self.vocab_size

    @property
    def padded_vocab_size(self) -> int:
        """Embedding rows: rounded up for fast matmuls (large vocabularies only)."""
        if self.vocab_size < 1024:  # a char vocabulary: padding would buy nothing
            return self.vocab_size
        m = self.pad_vocab_multiple
        return ((self.vocab_size + m - 1) // m) * m

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_defaults(cls) -> dict[str, Any]:
        """Each field's default (what a checkpoint written before a field existed had)."""
        return {f.name: f.default for f in fields(cls)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config field(s): {', '.join(unknown)}")
        return cls(**data)

    def with_overrides(self, **overrides: Any) -> "ModelConfig":
        """Return a copy with the given fields replaced; ``None`` values are ignored."""
        known = {f.name for f in fields(self)}
        clean = {}
        for key, value in overrides.items():
            if key not in known:
                raise ValueError(f"unknown model config field: {key}")
            if value is not None:
                clean[key] = value
        return replace(self, **clean)

    def describe(self) -> str:
        return (
            f"{self.n_layers} layers, {self.n_heads} heads, d_model {self.d_model}, "
            f"context {self.context_length}, vocab {self.vocab_size}"
        )


def validate_model_config(cfg: ModelConfig) -> None:
    """Raise one ``ValueError`` naming the first offending field."""
    for name in ("vocab_size", "context_length", "n_layers", "n_heads", "d_model", "pad_vocab_multiple"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if cfg.d_model % cfg.n_heads != 0:
        raise ValueError(
            f"d_model ({cfg.d_model}) must be divisible by n_heads ({cfg.n_heads}); "
            f"try n_heads in {_divisors(cfg.d_model)}"
        )
    if not isinstance(cfg.dropout, (int, float)) or isinstance(cfg.dropout, bool) or not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout!r}")
    if not isinstance(cfg.emb_init_std, (int, float)) or isinstance(cfg.emb_init_std, bool) or cfg.emb_init_std <= 0:
        raise ValueError(f"emb_init_std must be a positive number, got {cfg.emb_init_std!r}")
    if isinstance(cfg.n_classes, bool) or not isinstance(cfg.n_classes, int) or cfg.n_classes < 0:
        raise ValueError(f"n_classes must be a whole number >= 0, got {cfg.n_classes!r}")
    for name in ("bias", "qkv_bias", "tie_weights"):
        if not isinstance(getattr(cfg, name), bool):
            raise ValueError(f"{name} must be true or false, got {getattr(cfg, name)!r}")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, min(n, 64) + 1) if n % d == 0]

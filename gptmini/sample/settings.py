"""Sampling settings and the next-token row type: plain data, no torch.

They live apart from :mod:`gptmini.sampling` (which re-exports them) so that the
command line can build its options without importing torch.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from gptmini.errors import SamplingError

STRATEGIES = ("greedy", "temperature", "top-k", "top-p")

# --------------------------------------------------------------------- settings
@dataclass(frozen=True)
class SamplingSettings:
    """How to pick tokens.

    * ``greedy``: always the most probable token (``temperature``/``top_k``/
      ``top_p``/``seed`` are not used).
    * ``temperature``: sample from ``softmax(logits / T)``; ``T = 0`` is greedy.
      ``top_k``/``top_p`` are not used.
    * ``top-k``: temperature, then keep the ``top_k`` most probable tokens
      (``top_p`` also applied after it when set).
    * ``top-p``: temperature, then nucleus sampling: the smallest set of most
      probable tokens whose cumulative probability reaches ``top_p``
      (``top_k`` also applied before it when set).
    """

    strategy: str = "greedy"
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    max_new_tokens: int = 100
    seed: int | None = None
    stop: str | None = None

    # ---------------------------------------------------------------- checks
    def validate(self, vocab_size: int | None = None) -> None:
        """Raise :class:`SamplingError` with one clear message for the first problem."""
        if self.strategy not in STRATEGIES:
            raise SamplingError(
                f"unknown sampling strategy {self.strategy!r}; choose one of: {', '.join(STRATEGIES)}"
            )
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or math.isnan(t):
            raise SamplingError(f"temperature must be a number, got {t!r}")
        if t < 0:
            raise SamplingError(f"temperature must be >= 0 (0 means greedy), got {t}")
        if math.isinf(t):
            raise SamplingError("temperature must be finite")
        if self.top_k is not None:
            k = self.top_k
            if isinstance(k, bool) or not isinstance(k, numbers.Integral):
                raise SamplingError(f"top_k must be a whole number, got {k!r}")
            if k < 1:
                raise SamplingError(f"top_k must be at least 1, got {k}")
            if vocab_size is not None and k > vocab_size:
                raise SamplingError(f"top_k ({k}) is larger than the vocabulary ({vocab_size} tokens)")
        if self.top_p is not None:
            p = self.top_p
            if isinstance(p, bool) or not isinstance(p, numbers.Real) or math.isnan(p):
                raise SamplingError(f"top_p must be a number, got {p!r}")
            if not 0 < p <= 1:
                raise SamplingError(f"top_p must be in (0, 1] (e.g. 0.9), got {p}")
        if self.strategy == "top-k" and self.top_k is None:
            raise SamplingError("strategy top-k needs top_k (e.g. top_k=40)")
        if self.strategy == "top-p" and self.top_p is None:
            raise SamplingError("strategy top-p needs top_p (e.g. top_p=0.9)")
        n = self.max_new_tokens
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise SamplingError(f"max_new_tokens must be a whole number, got {n!r}")
        if n < 1:
            raise SamplingError(f"max_new_tokens must be at least 1, got {n}")
        if self.seed is not None:
            s = self.seed
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or not 0 <= s < 2**63:
                raise SamplingError(f"seed must be a whole number >= 0, got {s!r}")
        if self.stop is not None:
            if not isinstance(self.stop, str):
                raise SamplingError(f"stop must be text, got {self.stop!r}")
            if self.stop == "":
                raise SamplingError("stop string must not be empty (leave it unset for no stop string)")

    # -------------------------------------------------------- derived views
    @property
    def is_greedy(self) -> bool:
        """True when the next token is always the argmax (greedy, or T = 0)."""
        return self.strategy == "greedy" or self.temperature == 0

    @property
    def effective_top_k(self) -> int | None:
        return int(self.top_k) if self.strategy in ("top-k", "top-p") and self.top_k is not None else None

    @property
    def effective_top_p(self) -> float | None:
        if self.strategy in ("top-k", "top-p") and self.top_p is not None and self.top_p < 1:
            return float(self.top_p)
        return None

    def describe(self) -> str:
        """Short label such as ``"top-k k=40 T=0.8"`` (labels replies in the TUI)."""
        if self.strategy == "greedy":
            label = "greedy"
        else:
            parts = [self.strategy]
            if self.strategy in ("top-k", "top-p"):
                if self.top_k is not None:
                    parts.append(f"k={self.top_k}")
                if self.top_p is not None:
                    parts.append(f"p={self.top_p:g}")
            parts.append(f"T={self.temperature:g}")
            if self.temperature == 0:
                parts.append("(greedy)")
            label = " ".join(parts)
            if self.seed is not None:
                label += f" seed={self.seed}"
        if self.stop is not None:
            label += f" stop={self.stop!r}"
        return label


@dataclass
class Candidate:
    """One row of the next-token distribution."""

    token_id: int
    text: str  # tokenizer.token_text(token_id)
    prob: float  # raw softmax probability at T = 1
    filtered_prob: float  # after T / top-k / top-p and renormalisation; 0 if filtered out

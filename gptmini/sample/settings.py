"""Sampling settings and the next-token row type: plain data, no torch.

They live apart from :mod:`gptmini.sample.sampler` (which re-exports them) so that the
command line can build its options without importing torch.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from gptmini.errors import SamplingError
from gptmini.sample.strategies import KNOBS, STRATEGIES, TEMPERATURE, Knob, strategy

__all__ = ["STRATEGIES", "Candidate", "SamplingSettings"]


# --------------------------------------------------------------------- settings
@dataclass(frozen=True)
class SamplingSettings:
    """How to pick tokens (the strategies are :data:`gptmini.sample.strategies.STRATEGIES`).

    * ``greedy``: always the most probable token (``temperature``/``top_k``/
      ``top_p``/``min_p``/``seed`` are not used).
    * ``temperature``: sample from ``softmax(logits / T)``; ``T = 0`` is greedy.
      ``top_k``/``top_p``/``min_p`` are not used.
    * ``top-k``: temperature, then keep the ``top_k`` most probable tokens
      (``top_p`` also applied after it when set).
    * ``top-p``: temperature, then nucleus sampling: the smallest set of most
      probable tokens whose cumulative probability reaches ``top_p``
      (``top_k`` also applied before it when set).
    * ``min-p``: temperature, then keep the tokens at least ``min_p`` times as
      probable as the most probable one.
    """

    strategy: str = "greedy"
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    max_new_tokens: int = 100
    seed: int | None = None
    stop: str | None = None

    # ---------------------------------------------------------------- checks
    def validate(self, vocab_size: int | None = None) -> None:
        """Raise :class:`SamplingError` with one clear message for the first problem."""
        chosen = strategy(self.strategy)
        for knob in KNOBS:
            value = getattr(self, knob.name)
            if value is not None or not knob.optional:
                knob.check(value, vocab_size)
        if chosen.knob is not None and getattr(self, chosen.knob.name) is None:
            k = chosen.knob
            raise SamplingError(f"strategy {chosen.name} needs {k.name} (e.g. {k.name}={k.example})")
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
        return not strategy(self.strategy).samples or self.temperature == 0

    def knob_values(self) -> list[tuple[Knob, Any]]:
        """The knobs the strategy reads that are set, with their values, in the order they apply."""
        values = [(k, getattr(self, k.name)) for k in strategy(self.strategy).reads]
        return [(k, v) for k, v in values if v is not None]

    def describe(self) -> str:
        """Short label such as ``"top-k k=40 T=0.8"`` (labels replies in the TUI)."""
        if not strategy(self.strategy).samples:
            label = self.strategy
        else:
            parts = [self.strategy] + [k.text(v) for k, v in self.knob_values() if k is not TEMPERATURE]
            parts.append(TEMPERATURE.text(self.temperature))
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

"""The playground's sampling knobs (UI state) and how they map to ``SamplingSettings``."""

from __future__ import annotations

from dataclasses import dataclass, replace

from gptmini.sample.settings import STRATEGIES

TOP_K_STEPS = (1, 2, 3, 5, 10, 20, 40, 50, 100, 200, 500, 1000)
TEMPERATURE_RANGE = (0.1, 3.0)
TOP_P_RANGE = (0.05, 1.0)


@dataclass(frozen=True)
class PlaygroundSettings:
    strategy: str = "top-k"
    temperature: float = 1.0
    top_k: int = 40
    top_p: float = 0.9
    max_new_tokens: int = 120
    seed: int | None = None

    # ------------------------------------------------------------ mapping
    def sampling(self, strategy: str | None = None):
        """The ``gptmini.sampling.SamplingSettings`` for ``strategy`` (default: the active one)."""
        from gptmini.sample.sampler import SamplingSettings

        s = strategy or self.strategy
        return SamplingSettings(
            strategy=s,
            temperature=1.0 if s == "greedy" else self.temperature,
            top_k=self.top_k if s == "top-k" else None,
            top_p=self.top_p if s == "top-p" else None,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
        )

    def describe(self, strategy: str | None = None) -> str:
        return self.sampling(strategy).describe()

    # ------------------------------------------------------------ knobs
    def with_strategy(self, strategy: str) -> "PlaygroundSettings":
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}")
        return replace(self, strategy=strategy)

    def with_temperature(self, direction: int) -> "PlaygroundSettings":
        return replace(self, temperature=_stepped(self.temperature, 0.1 * direction, TEMPERATURE_RANGE))

    def with_top_k(self, direction: int, vocab_size: int | None = None) -> "PlaygroundSettings":
        steps = [k for k in TOP_K_STEPS if vocab_size is None or k <= vocab_size]
        if vocab_size is not None and vocab_size not in steps:
            steps.append(vocab_size)
        if direction > 0:
            bigger = [k for k in steps if k > self.top_k]
            k = bigger[0] if bigger else steps[-1]
        else:
            smaller = [k for k in steps if k < self.top_k]
            k = smaller[-1] if smaller else steps[0]
        return replace(self, top_k=k)

    def with_top_p(self, direction: int) -> "PlaygroundSettings":
        return replace(self, top_p=_stepped(self.top_p, 0.05 * direction, TOP_P_RANGE))

    def with_param(self, direction: int, vocab_size: int | None = None) -> "PlaygroundSettings":
        """Adjust the active strategy's own knob (T, k or p); greedy has none."""
        if self.strategy == "temperature":
            return self.with_temperature(direction)
        if self.strategy == "top-k":
            return self.with_top_k(direction, vocab_size)
        if self.strategy == "top-p":
            return self.with_top_p(direction)
        return self

    def fit_vocab(self, vocab_size: int | None) -> "PlaygroundSettings":
        if vocab_size is not None and self.top_k > vocab_size:
            return replace(self, top_k=vocab_size)
        return self


def _stepped(value: float, step: float, bounds: tuple[float, float]) -> float:
    """``value + step``, rounded to the knob's grid and kept inside ``bounds``."""
    lo, hi = bounds
    return min(hi, max(lo, round(value + step, 2)))

"""The playground's sampling knobs (UI state) and how they map to ``SamplingSettings``.

Which knobs there are, their defaults, ranges and steps come from the strategy registry
(:mod:`gptmini.sample.strategies`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gptmini.sample.strategies import KNOBS, MIN_P, STRATEGIES, TEMPERATURE, TOP_K, TOP_P, Knob, strategy


@dataclass(frozen=True)
class PlaygroundSettings:
    strategy: str = "top-k"
    temperature: float = TEMPERATURE.default
    top_k: int = TOP_K.default
    top_p: float = TOP_P.default
    min_p: float = MIN_P.default
    max_new_tokens: int = 120
    seed: int | None = None

    # ------------------------------------------------------------ mapping
    def sampling(self, name: str | None = None):
        """The ``SamplingSettings`` for strategy ``name`` (default: the active one).

        A strategy gets the temperature and its own knob; the other knobs it could read stay unset.
        """
        from gptmini.sample.settings import SamplingSettings

        chosen = strategy(name or self.strategy)
        knobs = {k.name: getattr(self, k.name) for k in chosen.reads if k is TEMPERATURE or k is chosen.knob}
        return SamplingSettings(strategy=chosen.name, max_new_tokens=self.max_new_tokens, seed=self.seed, **knobs)

    def describe(self, name: str | None = None) -> str:
        return self.sampling(name).describe()

    # ------------------------------------------------------------ knobs
    def with_strategy(self, name: str) -> "PlaygroundSettings":
        if name not in STRATEGIES:
            raise ValueError(f"unknown strategy {name!r}")
        return replace(self, strategy=name)

    def with_temperature(self, direction: int) -> "PlaygroundSettings":
        return self.with_knob(TEMPERATURE, direction)

    def with_param(self, direction: int, vocab_size: int | None = None) -> "PlaygroundSettings":
        """Adjust the active strategy's own knob (T, k, p, ...); a strategy without one is left as it is."""
        knob = STRATEGIES[self.strategy].knob
        return self if knob is None else self.with_knob(knob, direction, vocab_size)

    def with_knob(self, knob: Knob, direction: int, vocab_size: int | None = None) -> "PlaygroundSettings":
        """``knob`` one step up (``direction`` 1) or down (-1) on its console grid, inside its range."""
        value = getattr(self, knob.name)
        if knob.steps:
            steps = list(knob.steps)
            if knob.vocab_bound and vocab_size is not None:
                steps = [k for k in steps if k <= vocab_size]
                if vocab_size not in steps:
                    steps.append(vocab_size)
            if direction > 0:
                bigger = [k for k in steps if k > value]
                value = bigger[0] if bigger else steps[-1]
            else:
                smaller = [k for k in steps if k < value]
                value = smaller[-1] if smaller else steps[0]
        else:
            lo, hi = knob.console
            value = min(hi, max(lo, round(value + knob.step * direction, 2)))
        return replace(self, **{knob.name: value})

    def fit_vocab(self, vocab_size: int | None) -> "PlaygroundSettings":
        """Knobs bounded by the vocabulary (top-k) brought inside it."""
        if vocab_size is None:
            return self
        over = {k.name: vocab_size for k in KNOBS if k.vocab_bound and getattr(self, k.name) > vocab_size}
        return replace(self, **over) if over else self

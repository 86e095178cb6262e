"""The sampling strategies: one registry that the sampler, ``gptmini sample`` and the console all read.

A :class:`Strategy` is a name (``--strategy`` value, footer label, reply labels), a console key, a
line of help, its own :class:`Knob` (the one the console's ``-`` / ``+`` turn) and every knob it
reads, in the order their filters apply. A :class:`Knob` is a field of ``SamplingSettings`` (and of
the console's ``PlaygroundSettings``) with its command-line flag, its valid range, the console's
default and step, and which tokens it keeps.

Adding a strategy is one entry in :data:`STRATEGIES` (with its knob and keep function) and a field
named after the knob on ``SamplingSettings`` and ``PlaygroundSettings``; the flags, help texts,
checks, keys, labels and hints follow from here.

No torch at import: the command line builds its options from this module before torch loads (the
keep functions import it when they run).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Callable, Mapping

from gptmini.errors import SamplingError

# Tokens whose cumulative probability lies within this of ``top_p`` count as
# reaching it (float32 sums of e.g. 0.4 + 0.3 are not exactly 0.7).
_TOP_P_TOLERANCE = 1e-6


class Space(Enum):
    """What a knob's keep function looks at."""

    LOGITS = "logits"  # the temperature-scaled logits, before the softmax (removed tokens get -inf)
    PROBS = "probs"  # the probabilities after it (removed tokens get 0, the rest is renormalised)


# A keep function: (logits or probabilities ``(..., vocab)``, the knob's value) -> a bool mask of the
# tokens that survive, or None when the value keeps every token.
Keep = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Knob:
    """One number a strategy reads: a ``SamplingSettings`` field, its flag, its range, its filter."""

    name: str  # field of SamplingSettings / PlaygroundSettings: "top_k"
    symbol: str  # in labels: "k" -> "top-k k=40 T=1"
    flag: str  # command-line flag: "--top-k"
    metavar: str  # "N" / "F"
    cli_help: str  # what it does, for --help
    whole: bool  # a whole number (else a real number)
    rule: str  # the valid range in words: "at least 1" -> "top_k must be at least 1, got 0"
    low: float
    low_open: bool  # ``low`` itself is out of range
    high: float | None  # None: no upper bound (but finite)
    example: str  # a typical value, for "needs" messages: "40"
    default: float  # the console's starting value
    console: tuple[float, float]  # the console's range (its keys stay inside it)
    step: float  # the console's step for real knobs
    steps: tuple[int, ...] = ()  # the console's grid for whole knobs
    vocab_bound: bool = False  # at most the vocabulary size
    optional: bool = True  # False: SamplingSettings always carries a value (temperature)
    keep: Keep | None = None  # None: not a filter (temperature scales instead)
    space: Space = Space.PROBS

    def check(self, value: Any, vocab_size: int | None = None) -> None:
        """Raise :class:`SamplingError` with one clear message when ``value`` is out of range."""
        name = self.name
        if self.whole:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise SamplingError(f"{name} must be a whole number, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
            raise SamplingError(f"{name} must be a number, got {value!r}")
        if value < self.low or (self.low_open and value == self.low) or (self.high is not None and value > self.high):
            raise SamplingError(f"{name} must be {self.rule}, got {value}")
        if not self.whole and math.isinf(value):
            raise SamplingError(f"{name} must be finite")
        if self.vocab_bound and vocab_size is not None and value > vocab_size:
            raise SamplingError(f"{name} ({value}) is larger than the vocabulary ({vocab_size} tokens)")

    def text(self, value: Any) -> str:
        """``"k=40"``, ``"p=0.9"``: the knob in a label."""
        return f"{self.symbol}={value}" if self.whole else f"{self.symbol}={value:g}"


@dataclass(frozen=True)
class Strategy:
    """One way to pick the next token."""

    name: str  # --strategy value, footer label, the start of reply labels: "top-k"
    key: str  # the console key that picks it: "3"
    help: str  # help screen / palette text: "top-k sampling"
    knob: Knob | None  # its own knob (the console's - / +); None: nothing to adjust
    reads: tuple[Knob, ...] = ()  # every knob it uses, in the order they apply; temperature first

    def __post_init__(self) -> None:
        spaces = [k.space for k in self.filters]
        if spaces != sorted(spaces, key=lambda space: space is Space.PROBS):
            raise ValueError(f"strategy {self.name}: filters on logits must come before filters on probabilities")
        if self.knob is not None and self.knob not in self.reads:
            raise ValueError(f"strategy {self.name} must read its own knob {self.knob.name}")

    @property
    def samples(self) -> bool:
        """It draws at random (from temperature-scaled logits); False: always the most probable token."""
        return TEMPERATURE in self.reads

    @property
    def filters(self) -> tuple[Knob, ...]:
        """The knobs whose keep functions it applies, in order."""
        return tuple(k for k in self.reads if k.keep is not None)


# ------------------------------------------------------------------ keep functions
def keep_top_k(scaled: Any, k: int) -> Any:
    """Exactly the ``k`` largest logits (ties at the boundary broken by index)."""
    import torch

    if k >= scaled.shape[-1]:
        return None
    keep = torch.zeros_like(scaled, dtype=torch.bool)
    return keep.scatter_(-1, scaled.topk(k, dim=-1).indices, True)


def keep_top_p(probs: Any, p: float) -> Any:
    """The smallest most-probable set whose cumulative probability reaches ``p`` (nucleus)."""
    import torch

    if p >= 1:
        return None  # everything, even a tail too small to add up in float32
    sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    # A token is needed while the more probable ones have not reached p.
    keep_sorted = mass_before < p - _TOP_P_TOLERANCE
    keep_sorted[..., 0] = True
    return torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)


def keep_min_p(probs: Any, p_min: float) -> Any:
    """The tokens at least ``p_min`` times as probable as the most probable one."""
    return probs >= p_min * probs.amax(dim=-1, keepdim=True)


# ------------------------------------------------------------------------ knobs
TEMPERATURE = Knob(
    "temperature", "T", "--temperature", "F", "softmax temperature; default 1.0, 0 = greedy",
    whole=False, rule=">= 0 (0 means greedy)", low=0.0, low_open=False, high=None, example="0.8",
    default=1.0, console=(0.1, 3.0), step=0.1, optional=False,
)
TOP_K = Knob(
    "top_k", "k", "--top-k", "N", "keep the N most probable tokens",
    whole=True, rule="at least 1", low=1, low_open=False, high=None, example="40",
    default=40, console=(1, 1000), step=1, steps=(1, 2, 3, 5, 10, 20, 40, 50, 100, 200, 500, 1000),
    vocab_bound=True, keep=keep_top_k, space=Space.LOGITS,
)
TOP_P = Knob(
    "top_p", "p", "--top-p", "F", "nucleus: smallest set of tokens reaching probability F",
    whole=False, rule="in (0, 1] (e.g. 0.9)", low=0.0, low_open=True, high=1.0, example="0.9",
    default=0.9, console=(0.05, 1.0), step=0.05, keep=keep_top_p,
)
MIN_P = Knob(
    "min_p", "p", "--min-p", "F", "keep the tokens at least F times as probable as the most probable one",
    whole=False, rule="in (0, 1] (e.g. 0.05)", low=0.0, low_open=True, high=1.0, example="0.05",
    default=0.05, console=(0.01, 1.0), step=0.01, keep=keep_min_p,
)

# ------------------------------------------------------------------- the registry
STRATEGIES: Mapping[str, Strategy] = MappingProxyType({s.name: s for s in (
    Strategy("greedy", "1", "greedy: always the most probable token", None),
    Strategy("temperature", "2", "temperature sampling", TEMPERATURE, (TEMPERATURE,)),
    Strategy("top-k", "3", "top-k sampling", TOP_K, (TEMPERATURE, TOP_K, TOP_P)),
    Strategy("top-p", "4", "top-p (nucleus) sampling", TOP_P, (TEMPERATURE, TOP_K, TOP_P)),
    Strategy("min-p", "5", "min-p sampling: tokens at least p × the top one", MIN_P,
             (TEMPERATURE, MIN_P)),
)})
"""Every strategy by name, in console-key order (iterating gives the names)."""

KNOBS: tuple[Knob, ...] = tuple(s.knob for s in STRATEGIES.values() if s.knob is not None)
"""Every knob, each the own knob of exactly one strategy (its owner)."""

_OWNER: dict[str, Strategy] = {s.knob.name: s for s in STRATEGIES.values() if s.knob is not None}


def strategy(name: str) -> Strategy:
    """The strategy called ``name``; :class:`SamplingError` naming the choices otherwise."""
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise SamplingError(
            f"unknown sampling strategy {name!r}; choose one of: {', '.join(STRATEGIES)}"
        ) from None


def owner(knob: Knob) -> Strategy:
    """The strategy whose own knob this is (the one to pick to use it)."""
    return _OWNER[knob.name]


def sampling_strategies() -> list[Strategy]:
    """The strategies that draw at random (all but greedy)."""
    return [s for s in STRATEGIES.values() if s.samples]


def word_list(words: list[str], last: str = "or") -> str:
    """``"a, b or c"`` (``last="and"``: ``"a, b and c"``)."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def key_span(strategies: list[Strategy]) -> str:
    """Their keys as the hints say them: ``"1-4"`` when consecutive digits, else ``"1, 3, 5"``."""
    keys = [s.key for s in strategies]
    if len(keys) > 1 and all(k.isdigit() for k in keys) and \
            [int(k) for k in keys] == list(range(int(keys[0]), int(keys[0]) + len(keys))):
        return f"{keys[0]}-{keys[-1]}"
    return ", ".join(keys)


def _check_registry() -> None:
    """The registry's own consistency (a mistake here is a programming error, found at import)."""
    keys = [s.key for s in STRATEGIES.values()]
    if len(set(keys)) != len(keys):
        raise ValueError(f"two strategies share a console key: {keys}")
    if len(_OWNER) != len(KNOBS):
        raise ValueError("two strategies own the same knob")
    for s in STRATEGIES.values():
        for k in s.reads:
            if k.name not in _OWNER:
                raise ValueError(f"strategy {s.name} reads {k.name}, which no strategy owns")


_check_registry()

"""The options of the sampling strategies, shared by ``gptmini sample`` and ``gptmini respond``: their flags
(from the strategies' registry), the checks that refuse an option the chosen strategy would ignore, and the
messages that name the flag."""

from __future__ import annotations

import argparse
from typing import Any

from gptmini.errors import SamplingError
from gptmini.sample.settings import SamplingSettings
from gptmini.sample.strategies import (
    KNOBS,
    STRATEGIES,
    Knob,
    owner,
    sampling_strategies,
    word_list,
)


def add_sampling_options(p: argparse.ArgumentParser, *, max_new_tokens: int, max_new_tokens_help: str,
                         seed_help: str) -> None:
    """``--strategy``, a flag per knob, ``--max-new-tokens`` and ``--seed``."""
    p.add_argument("--strategy", choices=list(STRATEGIES), default="greedy",
                   help="how to pick each token (default: greedy)")
    for knob in KNOBS:
        p.add_argument(knob.flag, dest=knob.name, type=int if knob.whole else float, default=None,
                       metavar=knob.metavar, help=knob_help(knob))
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens, metavar="N",
                   help=f"{max_new_tokens_help} (default: {max_new_tokens})")
    p.add_argument("--seed", type=int, default=None, metavar="N", help=seed_help)


def add_device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="where to run the model (default: auto)")


def knob_help(knob: Knob) -> str:
    """``--top-k``'s help: what it does, the strategy that uses it, the others that read it too."""
    own = owner(knob).name
    others = [s.name for s in STRATEGIES.values() if knob in s.reads and s.name != own]
    also = f"; also used by {word_list(others, 'and')}" if others else ""
    return f"{knob.cli_help} (--strategy {own}{also})"


def check_strategy_options(args: argparse.Namespace) -> None:
    """Refuse a knob or ``--seed`` the chosen strategy would ignore, and a strategy without its own knob."""
    strategy = STRATEGIES[args.strategy]
    for knob in KNOBS:
        if getattr(args, knob.name) is not None and knob not in strategy.reads:
            raise SamplingError(f"{knob.flag} has no effect with --strategy {strategy.name}; "
                                f"use --strategy {owner(knob).name}")
    if not strategy.samples and args.seed is not None:
        first, *rest = [s.name for s in sampling_strategies()]
        raise SamplingError(f"--seed has no effect with --strategy {strategy.name}; "
                            f"use --strategy {first} (or {' / '.join(rest)})")
    own = strategy.knob
    if own is not None and own.optional and getattr(args, own.name) is None:
        raise SamplingError(f"--strategy {strategy.name} needs {own.flag} {own.metavar} "
                            f"(e.g. {own.flag} {own.example})")


def settings_from_options(args: argparse.Namespace, **fields: Any) -> SamplingSettings:
    """The settings the options give (checked by :func:`check_strategy_options` first); ``fields`` are the
    command's own (``stop``)."""
    check_strategy_options(args)
    knobs = {k.name: getattr(args, k.name) for k in KNOBS if getattr(args, k.name) is not None}
    settings = SamplingSettings(strategy=args.strategy, max_new_tokens=args.max_new_tokens, seed=args.seed,
                                **knobs, **fields)
    validate_settings(settings)
    return settings


def validate_settings(settings: SamplingSettings, vocab_size: int | None = None) -> None:
    """``settings.validate`` with messages naming the command-line flag."""
    try:
        settings.validate(vocab_size)
    except SamplingError as exc:
        msg = str(exc)
        fields = [(k.name, k.flag) for k in KNOBS]
        for field, flag in fields + [("max_new_tokens", "--max-new-tokens"), ("seed", "--seed"),
                                     ("stop string", "--stop")]:
            if msg.startswith(field):
                msg = flag + msg[len(field):]
                break
        raise SamplingError(msg) from None


def resolve_device(name: str) -> str:
    from gptmini.train.device import resolve_device as resolve

    return str(resolve(name))

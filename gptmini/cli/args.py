"""Options shared by ``gptmini train``, ``gptmini prepare`` and ``gptmini-tui``.

The options themselves are declared once in ``gptmini.options``. Every option defaults to "not given"
(argparse.SUPPRESS) so that we know which ones the user set: those override ``--config`` files and,
with ``--resume``, the checkpoint's own settings. Values from the command line and from TOML go
through the same ``read_option``, so both get the same checks and messages.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from gptmini.errors import ConfigError
from gptmini.options import BY_NAME, add_option_arguments, read_option
from gptmini.train_config import TrainConfig, load_toml


class Parser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    add_option_arguments(p)
    p.add_argument("--config", metavar="FILE.toml", default=argparse.SUPPRESS,
                   help="options from a TOML file (same names; the command line wins)")


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Merge ``--config`` and the command line into a validated ``TrainConfig``."""
    given: dict[str, Any] = {}
    path = getattr(args, "config", None)
    if path:
        values = {key.replace("-", "_"): value for key, value in load_toml(path).items()}
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            raise ConfigError(f"{path}: unknown option(s): {', '.join(unknown)}")
        for name, value in values.items():
            try:
                given[name] = read_option(name, value)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc}") from None
    for name, value in vars(args).items():
        if name in BY_NAME:
            given[name] = read_option(name, value)
    return TrainConfig.from_dict(given, explicit=tuple(sorted(given)))

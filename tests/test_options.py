"""Each option's default is said once, in the option table (or, where the preset decides, the recipes):
``TrainConfig`` and ``--help`` take it from there, so what the help says is what a run uses."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from gptmini.cli.args import Parser, add_train_arguments
from gptmini.options import BY_NAME, OPTIONS
from gptmini.presets import PRESET_DEFAULTS, PRESETS, shown
from gptmini.train.plan import plan_run
from gptmini.train_config import TrainConfig


@pytest.fixture
def help_lines(monkeypatch) -> dict[str, str]:
    """``gptmini train --help``, one unwrapped line per flag: {"--lr": "--lr F  peak learning rate (...)"}."""
    monkeypatch.setenv("COLUMNS", "2000")
    parser = Parser(prog="gptmini train")
    add_train_arguments(parser)
    lines: dict[str, str] = {}
    flag = None
    for line in parser.format_help().splitlines():
        starts = re.match(r"  (--[\w-]+)", line)
        if starts:
            flag = starts.group(1)
            lines[flag] = line
        elif flag and line.startswith("    "):  # the help under a long flag
            lines[flag] += " " + line.strip()
        else:
            flag = None
    return lines


def _plan(cfg: TrainConfig, batches_per_epoch: int = 10_000):
    return plan_run(cfg, batches_per_epoch=batches_per_epoch, device_type="cpu")


def test_every_train_config_field_is_an_option_with_the_tables_default():
    config_fields = {f.name: f for f in fields(TrainConfig) if f.name != "explicit"}
    assert list(config_fields) == [o.name for o in OPTIONS]  # no field of its own, none missing
    for name, f in config_fields.items():
        assert f.default == BY_NAME[name].default, name
    built = TrainConfig()
    for opt in OPTIONS:
        if opt.default is not None:
            assert getattr(built, opt.name) == opt.default, opt.name
    for name in PRESET_DEFAULTS:  # the preset decides these: the table leaves them unset
        assert BY_NAME[name].default is None, name


def test_the_help_says_each_options_own_default(help_lines):
    built = TrainConfig()
    for opt in OPTIONS:
        line = help_lines[opt.flag]
        if opt.default is not None:
            assert f"default: {shown(getattr(built, opt.name))}" in line, line
            assert f"({shown(opt.default)}" not in opt.about, f"{opt.flag}: its default is written by hand"
        else:
            assert "default" not in line or opt.unset or opt.name in PRESET_DEFAULTS, line
    assert "(default: 10)" in help_lines["--epochs"] and "(default: 0.95)" in help_lines["--beta2"]


def _says(words: str, preset: str, value) -> bool:
    """Do ``words`` give ``value`` to ``preset``, by name (``cpu-demo 32``, ``char for cpu-demo, ...``)?"""
    p, v = re.escape(preset), re.escape(shown(value))
    return bool(re.search(rf"(?<![\w-]){p} {v}(?![\w.-])", words)
                or re.search(rf"(?<![\w.-]){v} for [\w, -]*(?<![\w-]){p}(?![\w-])", words))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_the_help_says_what_each_preset_uses(help_lines, preset):
    config = TrainConfig(preset=preset)
    long_run, short_run = _plan(config), _plan(config, batches_per_epoch=10)
    used = {"--batch-size": config.batch_size, "--optimizer": long_run.optimizer,
            "--tokenizer": config.tokenizer_name, "--warmup-steps": long_run.warmup_steps, "--lr": long_run.lr}
    for flag, value in used.items():
        words = help_lines[flag].split("(default: ", 1)[1]
        named = re.search(rf"(?<![\w-]){re.escape(preset)}(?![\w-])", words)
        if named:
            assert _says(words, preset, value), (preset, value, words)
        elif flag == "--lr":  # the general rates, by width
            narrow, up_to, wide = re.search(r"(\S+) up to (\d+) wide, (\S+) above", words).groups()
            width = PRESETS[preset]["d_model"]
            assert value == float(narrow if width <= int(up_to) else wide), (preset, value, words)
        else:
            assert re.search(rf"else {re.escape(shown(value))}\b", words), (preset, value, words)
    # the warm-up is also at most a share of the run
    share = int(re.search(r"1/(\d+) of the run", help_lines["--warmup-steps"]).group(1))
    assert short_run.warmup_steps == min(long_run.warmup_steps, short_run.total_steps // share)
    # an explicit width takes the general rates, as the help says
    wide = _plan(TrainConfig(preset=preset, d_model=768, n_heads=12))
    assert "with --d-model" in help_lines["--lr"] and wide.lr == 6e-4

"""The options of a training run, typed once: the command line, ``--config`` TOML files and the console's
new-run form all read a value through ``read_option``, so each gets the same checks and the same message.

Ranges and combinations (``--epochs`` at least 1, ``--min-lr`` not above ``--lr``, the model's shape
rules) are ``TrainConfig.validate``'s, again shared by all three. Which options a checkpoint fixes (a
resumed run must keep them) is said here too (``FIXED_ON_RESUME``).
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from typing import Any

from gptmini.errors import ConfigError
from gptmini.presets import PRESETS
from gptmini.tasks import TASKS  # names only: no torch

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
TOKENIZERS = ("gpt2", "char")
OPTIMIZERS = ("adamw", "muon")


@dataclass(frozen=True)
class Option:
    name: str  # the TrainConfig field
    kind: str  # int / float / text / bool / paths / choice
    group: str  # the --help section
    help: str = ""
    metavar: str | None = None
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _opt(name: str, kind: str, group: str, help: str = "", metavar: str | None = None,
         choices: tuple[str, ...] = ()) -> Option:
    return Option(name, kind, group, help, metavar or {"int": "N", "float": "F"}.get(kind), choices)


OPTIONS: tuple[Option, ...] = (
    _opt("task", "choice", "data", "what the run trains for: pretrain (next tokens of a corpus)", "NAME",
         tuple(TASKS)),
    _opt("data", "paths", "data", "text files, folders (.txt/.md inside) or globs; default: the embedded Python reference",
         "PATH"),
    _opt("corpus", "text", "data", "a named corpus: the-verdict, tiny-shakespeare", "NAME"),
    _opt("tokenizer", "choice", "data", "gpt2 (BPE) or char; default: the preset's", choices=TOKENIZERS),
    _opt("val_fraction", "float", "data", "share of tokens for validation (0.1)"),
    _opt("stride", "int", "data", "tokens between window starts (= context)"),
    _opt("preset", "choice", "model", f"model size: {', '.join(PRESETS)} (default cpu-demo)", "NAME",
         tuple(PRESETS)),
    _opt("n_layers", "int", "model"),
    _opt("n_heads", "int", "model"),
    _opt("d_model", "int", "model"),
    _opt("context", "int", "model", "context length in tokens"),
    _opt("dropout", "float", "model"),
    _opt("init_from", "text", "model", "start from OpenAI's GPT-2 weights: gpt2, gpt2-medium, gpt2-large, gpt2-xl "
                                       "(downloaded once) or a folder with config.json + model.safetensors", "NAME|DIR"),
    _opt("bias", "bool", "model", "biases in linear layers and LayerNorms; --no-bias: none at all, as nanoGPT's "
                                  "bias=False (default: the preset's; GPT-2 has them)"),
    _opt("epochs", "int", "training", "passes over the data (10)"),
    _opt("max_steps", "int", "training", "optimizer steps; overrides --epochs"),
    _opt("batch_size", "int", "training", "sequences per micro-batch (default: the preset's; cpu-demo 32, else 16)"),
    _opt("grad_accum", "int", "training", "micro-batches per optimizer step (1)"),
    _opt("lr", "float", "training", "peak learning rate (default: the preset's; cpu-demo 5e-3, else 1e-3 up to "
                                    "384 wide, 6e-4 above)"),
    _opt("min_lr", "float", "training", "final learning rate (lr/10)"),
    _opt("warmup_steps", "int", "training", "linear warm-up steps (default: the preset's; cpu-demo 20, else 1/20 "
                                             "of the run, at most 200)"),
    _opt("lr_decay_steps", "int", "training", "cosine length (the run's steps)"),
    _opt("weight_decay", "float", "training"),
    _opt("optimizer", "choice", "training", "adamw, or muon: Muon for the blocks' matrices, AdamW for the rest "
                                            "(default: the preset's)", choices=OPTIMIZERS),
    _opt("beta1", "float", "training", "AdamW beta1 (0.9)"),
    _opt("beta2", "float", "training", "AdamW beta2 (0.95; the book: 0.999)"),
    _opt("grad_clip", "float", "training", "max gradient norm (1.0; 0 = off)"),
    _opt("eval_interval", "int", "evaluation", "steps between evaluations (100)"),
    _opt("eval_batches", "int", "evaluation", "batches per evaluation (10)"),
    _opt("sample_prompt", "text", "evaluation", "prompt of the sample at each evaluation", "TEXT"),
    _opt("sample_tokens", "int", "evaluation"),
    _opt("out", "text", "checkpoints", "run folder (checkpoints/<run-name>)", "DIR"),
    _opt("run_name", "text", "checkpoints", metavar="NAME"),
    _opt("resume", "text", "checkpoints", "a checkpoint, or a run folder (its latest)", "CHECKPOINT"),
    _opt("save_interval", "int", "checkpoints", "steps between checkpoints (500)"),
    _opt("keep_last", "int", "checkpoints", "checkpoints kept besides the best (3)"),
    _opt("device", "text", "hardware", f"{'|'.join(DEVICES)} (auto)", "NAME"),
    _opt("dtype", "choice", "hardware", "auto: bf16 autocast on CUDA, and on a CPU with native bf16 "
                                        "(avx512_bf16/amx_bf16) for GPT-2-vocabulary models 256+ wide; else fp32",
         choices=DTYPES),
    _opt("compile", "bool", "hardware", "torch.compile the model (default: on for CUDA)"),
    _opt("seed", "int", "hardware"),
    _opt("threads", "int", "hardware", "CPU threads for torch (default: PyTorch's; 1 is faster on a busy 2-core box)"),
    _opt("log_interval", "int", "hardware", "steps between loss fetches from the GPU (1 on CPU, 10 on CUDA)"),
)
BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}

# What a checkpoint fixes: resuming with another value would train another run (another model, other
# tokens, another order of the data). Everything else may change on --resume and is recorded as changed.
FIXED_ON_RESUME = ("task", "data", "corpus", "tokenizer", "val_fraction", "stride", "preset", "n_layers", "n_heads",
                   "d_model", "context", "bias", "seed", "init_from", "optimizer")


def read_option(name: str, value: Any) -> Any:
    """``value`` (text from the command line or the form, or a TOML value) as option ``name``'s type.

    Raises ``ConfigError`` naming the flag and what it takes.
    """
    opt = BY_NAME[name]
    kind = opt.kind
    if kind == "int":
        if isinstance(value, str):
            try:
                value = int(value.strip().replace("_", "").replace(",", ""))
            except ValueError:
                pass
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{opt.flag} must be a whole number, got {value!r}")
    if kind == "float":
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
            return float(value)
        raise ConfigError(f"{opt.flag} must be a number, got {value!r}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{opt.flag} must be true or false, got {value!r}")
    if kind == "paths":
        if isinstance(value, (str, os.PathLike)):
            value = [value]
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, os.PathLike)) and str(v)
                                                               for v in value):
            return [os.fspath(v) for v in value]
        raise ConfigError(f"{opt.flag} must be a path or a list of paths, got {value!r}")
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ConfigError(f"{opt.flag} must be text, got {value!r}")
    if kind == "choice" and value not in opt.choices:
        raise ConfigError(f"{opt.flag} must be one of {', '.join(opt.choices)}, got {value!r}")
    return value


def add_option_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """Add ``names`` (default: every option) to ``parser``, in their --help groups.

    Values stay text here (``argparse.SUPPRESS`` when not given, so we know what the user set); the
    caller reads them with ``read_option``, so the command line and TOML files share one set of messages.
    """
    groups: dict[str, Any] = {}
    for opt in OPTIONS:
        if names is not None and opt.name not in names:
            continue
        group = groups.get(opt.group) or groups.setdefault(opt.group, parser.add_argument_group(opt.group))
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": opt.help or None}
        if opt.kind == "bool":
            group.add_argument(opt.flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if opt.kind == "paths":
            kwargs["nargs"] = "+"
        metavar = opt.metavar or ("{" + ",".join(opt.choices) + "}" if opt.choices else None)
        group.add_argument(opt.flag, metavar=metavar, **kwargs)

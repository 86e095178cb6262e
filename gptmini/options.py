"""The options of a training run, typed once: the command line, ``--config`` TOML files and the console's
new-run form all read a value through ``read_option``, so each gets the same checks and the same message.

``OPTIONS`` is the one place each option is declared: its flag, its type, its help and its default.
``TrainConfig``'s fields are built from it, ``--help`` and the new-run form write each default from it
(``default_words``), so adding an option is one entry here. A default that the preset decides (the
model's shape, tokenizer, batch size, learning rate, warm-up, optimizer: ``PRESET_DEFAULTS``) is ``None``
here and resolved by ``presets.preset_default``, which also puts it in words.

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

from gptmini.data.prompts import PROMPT_STYLES
from gptmini.errors import ConfigError
from gptmini.presets import (
    PRESET_DEFAULTS,
    PRESETS,
    describe_preset_default,
    describe_task_default,
    preset_default,
    shown,
)
from gptmini.tasks import TASKS  # names only: no torch
from gptmini.text.corpus import CORPUS_NAMES, EMBEDDED_CORPUS

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
TOKENIZERS = ("gpt2", "char")
OPTIMIZERS = ("adamw", "muon")
KIND_TYPES: dict[str, Any] = {"int": int, "float": float, "text": str, "bool": bool, "paths": list[str], "choice": str}


@dataclass(frozen=True)
class Option:
    name: str  # the TrainConfig field
    kind: str  # one of KIND_TYPES
    group: str  # the --help section
    about: str = ""  # what it is; ``help`` adds the default
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    default: Any = None  # the value when not given; None: the preset's (PRESET_DEFAULTS) or ``unset``
    unset: str = ""  # what not giving it does, in words, where the default is None and no preset decides
    tasks: tuple[str, ...] = ()  # the tasks it applies to (empty: every task); set for another task: refused

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def field_type(self) -> Any:
        """The ``TrainConfig`` field's type: its kind's, or None as well where None means "the default"."""
        kind_type = KIND_TYPES[self.kind]
        return kind_type if self.default is not None else kind_type | None

    @property
    def help(self) -> str:
        """The ``--help`` line: what it is, and its default."""
        words = default_words(self.name)
        if not words:
            return self.about
        return f"{self.about} (default: {words})" if self.about else f"default: {words}"


def _opt(name: str, kind: str, group: str, about: str = "", metavar: str | None = None,
         choices: tuple[str, ...] = (), default: Any = None, unset: str = "", tasks: tuple[str, ...] = ()) -> Option:
    return Option(name, kind, group, about, metavar or {"int": "N", "float": "F"}.get(kind), choices, default, unset,
                  tasks)


OPTIONS: tuple[Option, ...] = (
    _opt("task", "choice", "data", "what the run trains for: pretrain (next tokens of a corpus), instruct "
                                   "(answers to instructions: the book's chapter 7)", "NAME", tuple(TASKS),
         default="pretrain"),
    _opt("data", "paths", "data", "pretrain: text files, folders (.txt/.md inside) or globs; instruct: one .json/"
                                  ".jsonl file of instruction/input/output or prompt/completion records, or "
                                  "instruction-data (the book's, downloaded once); classify: one .csv/.tsv/.jsonl of "
                                  "texts and labels, or sms-spam", "PATH",
         unset=f"the named corpus, else the embedded {EMBEDDED_CORPUS}"),
    _opt("corpus", "text", "data", f"a named corpus: {', '.join(CORPUS_NAMES)}", "NAME", tasks=("pretrain",)),
    _opt("tokenizer", "choice", "data", "gpt2 (BPE) or char", choices=TOKENIZERS),
    _opt("val_fraction", "float", "data", "share of tokens for validation", default=0.1, tasks=("pretrain",)),
    _opt("stride", "int", "data", "tokens between window starts", unset="the context", tasks=("pretrain",)),
    _opt("val_data", "text", "data", "the validation records in a file of their own (then --data is all "
                                     "training)", "FILE", unset="a share of --data", tasks=("instruct", "classify")),
    _opt("test_data", "text", "data", "the test records (gptmini respond answers them) in a file of their own",
         "FILE", unset="a share of --data", tasks=("instruct", "classify")),
    _opt("template", "choice", "fine-tuning", "how an instruction is put to the model: alpaca (the book's), phi3 "
                                              "(its exercise 7.1), raw", "NAME", tuple(PROMPT_STYLES),
         unset="alpaca; raw for prompt/completion records", tasks=("instruct",)),
    _opt("mask_prompt", "bool", "fine-tuning", "leave the prompt's tokens out of the loss (the book's exercise 7.2)",
         default=False, tasks=("instruct",)),
    _opt("text_column", "text", "fine-tuning", "the column (a CSV header's name, a field of JSONL, or a 0-based "
                                                "number for a file without a header) holding the text", "NAME",
         default="text", tasks=("classify",)),
    _opt("label_column", "text", "fine-tuning", "the column holding the label", "NAME", default="label",
         tasks=("classify",)),
    _opt("balance", "bool", "fine-tuning", "undersample every label to the rarest one's count (the book's)",
         default=False, tasks=("classify",)),
    _opt("train_layers", "choice", "fine-tuning", "what trains besides the new head: last (the last block and the "
                                                  "final norm, as the book) or all", choices=("last", "all"),
         default="last", tasks=("classify",)),
    _opt("padding", "choice", "fine-tuning", "pad every text to the longest training text (the book's) or each "
                                             "batch to its longest", choices=("longest", "batch"), default="longest",
         tasks=("classify",)),
    _opt("lora_rank", "int", "fine-tuning", "train low-rank adapters of this rank (appendix E) and freeze the "
                                            "model", unset="no LoRA: every weight trains"),
    _opt("lora_alpha", "float", "fine-tuning", "the adapters' scale: their output is alpha * x A B, as the book's "
                                               "(PEFT's lora_alpha = alpha x rank)", default=16.0),
    _opt("lora_targets", "choice", "fine-tuning", "the layers that get adapters: attn (q, k, v, out), mlp, or all "
                                                  "(every linear layer and the output head, as the book)",
         choices=("attn", "mlp", "all"), default="all"),
    _opt("preset", "choice", "model", f"model size: {', '.join(PRESETS)}", "NAME", tuple(PRESETS),
         default="cpu-demo"),
    _opt("n_layers", "int", "model"),
    _opt("n_heads", "int", "model"),
    _opt("d_model", "int", "model"),
    _opt("context", "int", "model", "context length in tokens"),
    _opt("dropout", "float", "model"),
    _opt("init_from", "text", "model", "start from OpenAI's GPT-2 weights: gpt2, gpt2-medium, gpt2-large, gpt2-xl "
                                       "(downloaded once) or a folder with config.json + model.safetensors", "NAME|DIR"),
    _opt("bias", "bool", "model", "biases in linear layers and LayerNorms (GPT-2 has them); --no-bias: none at "
                                  "all, as nanoGPT's bias=False"),
    _opt("epochs", "int", "training", "passes over the data", default=10),
    _opt("max_steps", "int", "training", "optimizer steps; overrides --epochs", unset="all epochs"),
    _opt("batch_size", "int", "training", "sequences per micro-batch"),
    _opt("grad_accum", "int", "training", "micro-batches per optimizer step", default=1),
    _opt("lr", "float", "training", "peak learning rate"),
    _opt("min_lr", "float", "training", "final learning rate", unset="lr/10"),
    _opt("warmup_steps", "int", "training", "linear warm-up steps"),
    _opt("lr_decay_steps", "int", "training", "cosine length", unset="the run's steps"),
    _opt("weight_decay", "float", "training", default=0.1),
    _opt("optimizer", "choice", "training", "adamw, or muon: Muon for the blocks' matrices, AdamW for the rest",
         choices=OPTIMIZERS),
    _opt("beta1", "float", "training", "AdamW beta1", default=0.9),
    _opt("beta2", "float", "training", "AdamW beta2; the book's: 0.999", default=0.95),
    _opt("grad_clip", "float", "training", "max gradient norm; 0 = off", default=1.0),
    _opt("eval_interval", "int", "evaluation", "steps between evaluations", default=100),
    _opt("eval_batches", "int", "evaluation", "batches per evaluation", default=10),
    _opt("sample_prompt", "text", "evaluation", "prompt of the sample at each evaluation", "TEXT",
         unset="the start of a line of the validation text", tasks=("pretrain",)),
    _opt("sample_tokens", "int", "evaluation", default=60),
    _opt("out", "text", "checkpoints", "run folder", "DIR", unset="checkpoints/<run-name>"),
    _opt("run_name", "text", "checkpoints", metavar="NAME", unset="<preset>-<date>-<time>"),
    _opt("resume", "text", "checkpoints", "a checkpoint, or a run folder (its latest)", "CHECKPOINT"),
    _opt("save_interval", "int", "checkpoints", "steps between checkpoints", default=500),
    _opt("keep_last", "int", "checkpoints", "checkpoints kept besides the best", default=3),
    _opt("device", "text", "hardware", "|".join(DEVICES), "NAME", default="auto"),
    _opt("dtype", "choice", "hardware", "auto: bf16 autocast on CUDA, and on a CPU with native bf16 "
                                        "(avx512_bf16/amx_bf16) for GPT-2-vocabulary models 256+ wide; else fp32",
         choices=DTYPES, default="auto"),
    _opt("compile", "bool", "hardware", "torch.compile the model", unset="on for CUDA"),
    _opt("seed", "int", "hardware", default=1337),
    _opt("threads", "int", "hardware", "CPU threads for torch; 1 is faster on a busy 2-core box", unset="PyTorch's"),
    _opt("log_interval", "int", "hardware", "steps between loss fetches from the GPU", unset="1 on CPU, 10 on CUDA"),
)
BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


def default_words(name: str, preset: str | None = None, d_model: int | None = None) -> str:
    """Option ``name``'s default in words, "" where it has none.

    Its value (``10``); for one the preset decides, the rule for every preset (``the preset's: cpu-demo 32,
    else 16``) or, given ``preset`` (and the ``--d-model`` given, which the learning rate follows), what that
    preset uses (``5e-3 (cpu-demo recipe)``); else what leaving it unset does (``lr/10``).
    """
    opt = BY_NAME[name]
    if opt.default is not None:
        return shown(opt.default)
    if name in PRESET_DEFAULTS:
        if preset is not None:
            return str(preset_default(name, preset, d_model=d_model))
        tasks = describe_task_default(name)
        return describe_preset_default(name) + (f"; fine-tuning: {tasks}" if tasks else "")
    return opt.unset


# What a checkpoint fixes: resuming with another value would train another run (another model, other
# tokens, another order of the data). Everything else may change on --resume and is recorded as changed.
FIXED_ON_RESUME = ("task", "data", "val_data", "test_data", "template", "mask_prompt", "text_column", "label_column",
                   "balance", "padding", "train_layers", "lora_rank", "lora_alpha",
                   "lora_targets", "corpus", "tokenizer", "val_fraction", "stride", "preset", "n_layers", "n_heads",
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
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": opt.help.replace("%", "%%") or None}
        if opt.kind == "bool":
            group.add_argument(opt.flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if opt.kind == "paths":
            kwargs["nargs"] = "+"
        metavar = opt.metavar or ("{" + ",".join(opt.choices) + "}" if opt.choices else None)
        group.add_argument(opt.flag, metavar=metavar, **kwargs)

"""Options shared by ``gptmini train`` and ``gptmini-tui``.

Every option defaults to "not given" (argparse.SUPPRESS) so that we know which
ones the user set: those override ``--config`` files and, with ``--resume``,
the checkpoint's own settings.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import Any, NoReturn

from gptmini.config import PRESETS
from gptmini.errors import ConfigError
from gptmini.train_config import DEVICES, DTYPES, TOKENIZERS, TrainConfig, load_toml


class Parser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def add_data_arguments(p: argparse.ArgumentParser, *, windows: bool = True) -> argparse._ArgumentGroup:
    S = argparse.SUPPRESS
    data = p.add_argument_group("data")
    data.add_argument("--data", nargs="+", metavar="PATH", default=S,
                      help="text files, folders (.txt/.md inside) or globs; default: the embedded Python reference")
    data.add_argument("--corpus", metavar="NAME", default=S, help="a named corpus: the-verdict, tiny-shakespeare")
    data.add_argument("--tokenizer", choices=TOKENIZERS, default=S, help="gpt2 (BPE) or char; default: the preset's")
    if windows:
        data.add_argument("--val-fraction", type=float, metavar="F", default=S,
                          help="share of tokens for validation (0.1)")
        data.add_argument("--stride", type=int, metavar="N", default=S, help="tokens between window starts (= context)")
    return data


def add_preset_argument(group) -> None:
    group.add_argument("--preset", choices=list(PRESETS), metavar="NAME", default=argparse.SUPPRESS,
                       help=f"model size: {', '.join(PRESETS)} (default cpu-demo)")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    S = argparse.SUPPRESS
    add_data_arguments(p)
    model = p.add_argument_group("model")
    add_preset_argument(model)
    model.add_argument("--n-layers", type=int, metavar="N", default=S)
    model.add_argument("--n-heads", type=int, metavar="N", default=S)
    model.add_argument("--d-model", type=int, metavar="N", default=S)
    model.add_argument("--context", type=int, metavar="N", default=S, help="context length in tokens")
    model.add_argument("--dropout", type=float, metavar="F", default=S)
    model.add_argument("--bias", action=argparse.BooleanOptionalAction, default=S,
                       help="biases in linear layers and LayerNorms; --no-bias: none at all, as nanoGPT's "
                            "bias=False (default: the preset's; GPT-2 has them)")
    opt = p.add_argument_group("training")
    opt.add_argument("--epochs", type=int, metavar="N", default=S, help="passes over the data (10)")
    opt.add_argument("--max-steps", type=int, metavar="N", default=S, help="optimizer steps; overrides --epochs")
    opt.add_argument("--batch-size", type=int, metavar="N", default=S, help="sequences per micro-batch (16)")
    opt.add_argument("--grad-accum", type=int, metavar="N", default=S, help="micro-batches per optimizer step (1)")
    opt.add_argument("--lr", type=float, metavar="F", default=S, help="peak learning rate")
    opt.add_argument("--min-lr", type=float, metavar="F", default=S, help="final learning rate (lr/10)")
    opt.add_argument("--warmup-steps", type=int, metavar="N", default=S)
    opt.add_argument("--lr-decay-steps", type=int, metavar="N", default=S, help="cosine length (the run's steps)")
    opt.add_argument("--weight-decay", type=float, metavar="F", default=S)
    opt.add_argument("--beta1", type=float, metavar="F", default=S, help="AdamW beta1 (0.9)")
    opt.add_argument("--beta2", type=float, metavar="F", default=S, help="AdamW beta2 (0.95; the book: 0.999)")
    opt.add_argument("--grad-clip", type=float, metavar="F", default=S, help="max gradient norm (1.0; 0 = off)")
    ev = p.add_argument_group("evaluation")
    ev.add_argument("--eval-interval", type=int, metavar="N", default=S, help="steps between evaluations (100)")
    ev.add_argument("--eval-batches", type=int, metavar="N", default=S, help="batches per evaluation (10)")
    ev.add_argument("--sample-prompt", metavar="TEXT", default=S, help="prompt of the sample at each evaluation")
    ev.add_argument("--sample-tokens", type=int, metavar="N", default=S)
    ck = p.add_argument_group("checkpoints")
    ck.add_argument("--out", metavar="DIR", default=S, help="run folder (checkpoints/<run-name>)")
    ck.add_argument("--run-name", metavar="NAME", default=S)
    ck.add_argument("--resume", metavar="CHECKPOINT", default=S, help="a checkpoint, or a run folder (its latest)")
    ck.add_argument("--save-interval", type=int, metavar="N", default=S, help="steps between checkpoints (500)")
    ck.add_argument("--keep-last", type=int, metavar="N", default=S, help="checkpoints kept besides the best (3)")
    hw = p.add_argument_group("hardware")
    hw.add_argument("--device", metavar="NAME", default=S, help=f"{'|'.join(DEVICES)} (auto)")
    hw.add_argument("--dtype", choices=DTYPES, default=S, help="auto: bf16 autocast on CUDA, fp32 elsewhere")
    hw.add_argument("--compile", action=argparse.BooleanOptionalAction, default=S,
                    help="torch.compile the model (default: on for CUDA)")
    hw.add_argument("--seed", type=int, metavar="N", default=S)
    hw.add_argument("--threads", type=int, metavar="N", default=S,
                    help="CPU threads for torch (default: PyTorch's; 1 is faster on a busy 2-core box)")
    hw.add_argument("--log-interval", type=int, metavar="N", default=S,
                    help="steps between loss fetches from the GPU (1 on CPU, 10 on CUDA)")
    p.add_argument("--config", metavar="FILE.toml", default=S, help="options from a TOML file (same names)")


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Merge ``--config`` and the command line into a validated ``TrainConfig``."""
    known = {f.name for f in fields(TrainConfig)} - {"explicit"}
    given: dict[str, Any] = {}
    if getattr(args, "config", None):
        for key, value in load_toml(args.config).items():
            given[key.replace("-", "_")] = value
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(f"{args.config}: unknown option(s): {', '.join(unknown)}")
    for name, value in vars(args).items():
        if name in known:
            given[name] = value
    return TrainConfig.from_dict(given, explicit=tuple(sorted(given)))

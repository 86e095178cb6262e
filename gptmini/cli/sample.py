"""``gptmini sample``: generate text from a checkpoint, streamed to stdout.

Generated text goes to stdout (prompt first, then the continuation as it is
produced); what was loaded, the settings and the speed go to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from gptmini.cli.sampling_options import (
    add_device_option,
    add_sampling_options,
    resolve_device,
    settings_from_options,
    validate_settings,
)
from gptmini.errors import GPTMiniError, SamplingError
from gptmini.sample.settings import Candidate, SamplingSettings
from gptmini.sample.strategies import STRATEGIES, sampling_strategies, word_list

DEFAULT_PROMPT = "The "


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sample",
        help="generate text from a checkpoint",
        description=(
            f"Generate text from a trained checkpoint with {word_list(list(STRATEGIES))} "
            "sampling, streaming tokens as they are produced."
        ),
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="PATH|RUN_DIR",
                        help="a checkpoint folder, or a run folder (its latest checkpoint)")
    source.add_argument("--init-from", metavar="NAME|DIR",
                        help="OpenAI's GPT-2 as it was pretrained: gpt2, gpt2-medium, gpt2-large, gpt2-xl "
                             "(downloaded once), or a folder with config.json + model.safetensors")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, metavar="TEXT",
                   help=f"text to continue (default: {DEFAULT_PROMPT!r}; '' starts from <|endoftext|> with gpt2)")
    add_sampling_options(p, max_new_tokens=200, max_new_tokens_help="tokens to generate per sample",
                         seed_help="seed for reproducible sampling (sample i uses seed+i)")
    p.add_argument("--num-samples", type=int, default=1, metavar="N",
                   help="how many samples to generate (default: 1)")
    p.add_argument("--stop", default=None, metavar="TEXT",
                   help="stop a sample when this text appears (it is not printed)")
    p.add_argument("--show-probs", action="store_true",
                   help="print the top-10 next-token probabilities after the prompt first")
    add_device_option(p)
    p.set_defaults(run=run)
    return p


# ----------------------------------------------------------------- option checks
def settings_from_args(args: argparse.Namespace) -> SamplingSettings:
    """Build the settings, refusing options that would be silently ignored."""
    settings = settings_from_options(args, stop=args.stop)
    if not STRATEGIES[args.strategy].samples and args.num_samples > 1:
        raise SamplingError(
            f"--num-samples > 1 with --strategy {args.strategy} prints the same text every time; "
            f"use a sampling strategy ({word_list([s.name for s in sampling_strategies()])})"
        )
    if args.num_samples < 1:
        raise SamplingError(f"--num-samples must be at least 1, got {args.num_samples}")
    return settings


# ------------------------------------------------------------------- loading
def _load(args: argparse.Namespace, device: str):
    """``(model, tokenizer, what was loaded)``; a seam for tests."""
    if args.init_from:
        from gptmini.interop.pretrained import load_model
        from gptmini.text.tokenizer import build_tokenizer

        model, _cfg, _folder = load_model(args.init_from, device=device)
        return model, build_tokenizer("gpt2"), f"{args.init_from} (pretrained GPT-2"
    from gptmini.ckpt.state import load_for_inference

    model, tokenizer, manifest = load_for_inference(args.checkpoint, device=device)
    return model, tokenizer, f"{args.checkpoint} (step {manifest.get('step', '?')}"


# ------------------------------------------------------------------- output
def format_distribution(cands: list[Candidate], width: int = 30, bar_char: str = "█") -> str:
    """Table of the next-token candidates: token, raw prob, filtered prob, bar."""
    # token_text is already printable (spaces as ␣, control characters escaped)
    shown = [c.text if len(c.text) <= 18 else c.text[:15] + "..." for c in cands]
    tw = max([len("token")] + [len(s) for s in shown])
    lines = [f"  {'#':>2}  {'token':<{tw}}  {'id':>6}  {'prob':>7}  {'filtered':>8}"]
    for rank, (c, s) in enumerate(zip(cands, shown), start=1):
        bar = bar_char * max(0, round(c.filtered_prob * width))
        lines.append(
            f"  {rank:>2}  {s:<{tw}}  {c.token_id:>6}  {c.prob * 100:6.2f}%  {c.filtered_prob * 100:7.2f}%  {bar}"
        )
    return "\n".join(lines)


def _bar_char() -> str:
    enc = (getattr(sys.stdout, "encoding", None) or "").lower()
    return "█" if "utf" in enc else "#"


def _write(stream, text: str) -> None:
    try:
        stream.write(text)
    except UnicodeEncodeError:
        enc = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(enc, errors="replace").decode(enc))
    stream.flush()


# ---------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except GPTMiniError as exc:
        sys.stdout.flush()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from gptmini.sample.sampler import Sampler

    settings = settings_from_args(args)
    device = resolve_device(args.device)
    model, tokenizer, loaded = _load(args, device)
    sampler = Sampler(model, tokenizer)
    validate_settings(settings, sampler.vocab_size)
    prompt = args.prompt
    sampler.encode_prompt(prompt)  # clear error for an empty prompt / unknown characters, before any output

    print(
        f"loaded {loaded}, {getattr(tokenizer, 'name', '?')} tokenizer, "
        f"{model.config.describe()}) on {sampler.device}; sampling: {settings.describe()}",
        file=sys.stderr,
    )

    if args.show_probs:
        cands = sampler.next_token_distribution(prompt, settings, top_n=10)
        _write(sys.stdout, f"next-token probabilities after the prompt ({settings.describe()}):\n")
        _write(sys.stdout, format_distribution(cands, bar_char=_bar_char()) + "\n\n")

    total_tokens = 0
    total_time = 0.0
    for i in range(args.num_samples):
        s = settings
        if settings.seed is not None and i > 0:
            s = SamplingSettings(**{**settings.__dict__, "seed": settings.seed + i})
        if args.num_samples > 1:
            _write(sys.stdout, f"{'' if i == 0 else chr(10)}--- sample {i + 1}/{args.num_samples} ---\n")
        _write(sys.stdout, prompt)
        t0 = time.perf_counter()
        n = 0
        for ev in sampler.stream(prompt, s):
            if ev.token_id >= 0:
                n += 1
            if ev.text:
                _write(sys.stdout, ev.text)
        total_time += time.perf_counter() - t0
        total_tokens += n
        _write(sys.stdout, "\n")
        if not s.is_greedy:
            print(f"(sample {i + 1}: {n} tokens, seed {sampler.last_seed})", file=sys.stderr)
    rate = total_tokens / total_time if total_time > 0 else float("inf")
    print(f"{total_tokens} tokens in {total_time:.2f}s ({rate:.1f} tok/s)", file=sys.stderr)
    return 0

"""``gptmini respond``: an instruction-tuned checkpoint answers the run's test split (or ``--data``), in
batches through one KV cache, and the answers are written as the book's chapter 7 writes them: a JSON list
of the records as they were read, each with its ``"model_response"``.

The prompt is the run's own template; an answer ends at the end marker (end-of-text; a blank line for the
char tokenizer) or after ``--max-new-tokens`` (the book's 256), and is stripped. Everything that can be
checked (options, checkpoint, data, the output file) is checked before the model loads; the output is
written whole or not at all and never over an existing file without ``--force``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from gptmini.cli.sampling_options import (
    add_device_option,
    add_sampling_options,
    resolve_device,
    settings_from_options,
    validate_settings,
)
from gptmini.errors import ConfigError, CorpusError, TokenizerError

DEFAULT_BATCH_SIZE = 8
MAX_NEW_TOKENS = 256  # the book's


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "respond",
        help="answer the test instructions of an instruction-tuned run (the book's chapter 7)",
        description=(
            "Answer the instructions of an instruction-tuned run's test split (or of --data) with its checkpoint, "
            "in batches, and write the book's JSON: each record plus its \"model_response\"."
        ),
    )
    p.add_argument("--checkpoint", required=True, metavar="PATH|RUN_DIR",
                   help="a checkpoint folder, or a run folder (its latest checkpoint)")
    p.add_argument("--data", metavar="FILE",
                   help="answer the records of this .json/.jsonl file instead of the run's test split")
    p.add_argument("--out", metavar="FILE.json",
                   help="where to write the answers (default: the run folder's responses-step-NNNNNN.json, "
                        "or responses-NAME-step-NNNNNN.json for --data NAME.json)")
    p.add_argument("--force", action="store_true", help="overwrite --out when it exists")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                   help=f"instructions answered at once (default: {DEFAULT_BATCH_SIZE})")
    add_sampling_options(p, max_new_tokens=MAX_NEW_TOKENS, max_new_tokens_help="tokens per answer at most",
                         seed_help="seed for reproducible sampling (record i uses seed+i)")
    add_device_option(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Errors are raised (``GPTMiniError``): ``gptmini.cli.main`` prints them as one line."""
    from gptmini.ckpt.store import resolve_checkpoint
    from gptmini.paths import check_output_file

    settings = settings_from_options(args)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    ckpt_dir = resolve_checkpoint(args.checkpoint)
    manifest = _instruct_manifest(ckpt_dir)
    out = Path(args.out).expanduser() if args.out else _default_out(ckpt_dir, manifest, args.data)
    check_output_file(out, force=args.force)
    records, source = _records(args.data, ckpt_dir)
    if not settings.is_greedy and settings.seed is None:
        settings = replace(settings, seed=random.randrange(2**31))
        print(f"sampling with seed {settings.seed} (record i uses {settings.seed}+i; reproduce with --seed)",
              file=sys.stderr)

    from gptmini.ckpt.state import load_for_inference

    device = resolve_device(args.device)
    model, tokenizer, manifest = load_for_inference(ckpt_dir, device=device)
    validate_settings(settings, model.config.vocab_size)
    template = manifest["task"].get("template") or "alpaca"
    prompts = _prompts(records, tokenizer, template, source)
    ctx = model.config.context_length
    print(f"loaded {ckpt_dir} (step {manifest.get('step', '?')}, {getattr(tokenizer, 'name', '?')} tokenizer, "
          f"{model.config.describe()}) on {device}; answering {len(records)} records of {source} "
          f"({template} template, {settings.describe()}, batch {args.batch_size})", file=sys.stderr)
    long = sum(len(p) > ctx for p in prompts)
    if long:
        print(f"note: {long} prompts are longer than the context ({ctx} tokens); the model sees their last "
              f"{ctx} tokens", file=sys.stderr)

    answers, tokens, seconds = _answer(model, tokenizer, prompts, settings, args.batch_size)
    from gptmini.ckpt.files import write_text_atomic

    check_output_file(out, force=args.force)  # again: it may have appeared meanwhile
    out.parent.mkdir(parents=True, exist_ok=True)
    document = [{**rec.source, "model_response": answer} for rec, answer in zip(records, answers)]
    write_text_atomic(out, json.dumps(document, indent=4) + "\n")
    rate = tokens / seconds if seconds > 0 else float("inf")
    print(f"wrote {len(document)} responses to {out} ({tokens} tokens in {seconds:.1f}s, {rate:.1f} tok/s)",
          file=sys.stderr)
    return 0


# ------------------------------------------------------------------ what to answer
def _instruct_manifest(ckpt_dir: Path) -> dict[str, Any]:
    """The checkpoint's manifest, when it is an instruction-tuned one."""
    from gptmini.ckpt.seal import read_manifest

    manifest = read_manifest(ckpt_dir)
    task = manifest.get("task") or {}
    name = task.get("name", "pretrain") if isinstance(task, dict) else "pretrain"
    if name != "instruct":
        kind = "pre-training" if name == "pretrain" else name
        raise ConfigError(f"{ckpt_dir} is a {kind} checkpoint; gptmini respond answers instructions "
                          f"(train one with --task instruct)")
    return manifest


def _default_out(ckpt_dir: Path, manifest: dict[str, Any], data: str | None) -> Path:
    """``<run>/responses-step-NNNNNN.json`` (``responses-NAME-step-NNNNNN.json`` for ``--data NAME.json``)."""
    from gptmini.ckpt.layout import checkpoint_name

    name = "responses" + (f"-{Path(data).stem}" if data else "")
    return ckpt_dir.parent / f"{name}-{checkpoint_name(int(manifest.get('step', 0)))}.json"


def _records(data: str | None, ckpt_dir: Path) -> tuple[list[Any], str]:
    """The records to answer and where they come from: ``--data``, or the run's test split."""
    from gptmini.data.instructions import read_records
    from gptmini.data.splits import SPLIT_FILE, file_sha256, read_split

    if data:
        return read_records(data), str(Path(data).expanduser())
    run_dir = ckpt_dir.parent
    split = read_split(run_dir)
    if split is None:
        raise CorpusError(f"{run_dir} has no {SPLIT_FILE} (the run's test split); pass --data FILE")
    try:
        part = split["test"]
        path, sha, indices = Path(part["path"]).expanduser(), part["sha256"], [int(i) for i in part["indices"]]
    except (KeyError, TypeError, ValueError):
        raise CorpusError(f"{run_dir / SPLIT_FILE} does not describe a test split; pass --data FILE") from None
    if not indices:
        raise CorpusError(f"the run's test split is empty ({run_dir / SPLIT_FILE}); pass --data FILE to answer "
                          f"other records")
    if not path.is_file():
        raise CorpusError(f"the run's test split is in {path}, which cannot be found; pass --data FILE")
    if file_sha256(path) != sha:
        raise CorpusError(f"{path} has changed since the run split it (sha256 {sha[:12]} then); its test "
                          f"records are no longer known; pass --data FILE")
    records = read_records(path)
    if max(indices) >= len(records):
        raise CorpusError(f"{run_dir / SPLIT_FILE} names record {max(indices) + 1} of {path}, which has "
                          f"{len(records)}; pass --data FILE")
    return [records[i] for i in indices], f"the test split ({path})"


def _prompts(records: list[Any], tokenizer: Any, template: str, source: str) -> list[list[int]]:
    from gptmini.data.prompts import prompt_style

    style = prompt_style(template)
    prompts = []
    for i, rec in enumerate(records):
        try:
            prompts.append(tokenizer.encode(style.prompt(rec.instruction, rec.input)))
        except TokenizerError as exc:
            raise CorpusError(f"{source}: record {i + 1}: {exc}") from None
    return prompts


# ------------------------------------------------------------------ generation
def _answer(model: Any, tokenizer: Any, prompts: list[list[int]], settings: Any,
            batch_size: int) -> tuple[list[str], int, float]:
    """The answers (stripped), the tokens generated and the seconds it took, with a progress bar."""
    from gptmini.data.instructions import end_marker
    from gptmini.sample.batch import generate_many

    console = Console(stderr=True)
    bar = Progress(TextColumn("answering"), BarColumn(bar_width=24), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console, transient=True,
                   refresh_per_second=4, disable=not console.is_terminal)
    task = bar.add_task("answering", total=len(prompts), rate="")
    t0, tokens = time.perf_counter(), 0

    def progress(new_tokens: int, finished: int) -> None:
        nonlocal tokens
        tokens += new_tokens
        elapsed = time.perf_counter() - t0
        bar.update(task, advance=finished, rate=f"{tokens / elapsed:.0f} tok/s" if elapsed > 0 else "")

    with bar:
        done = generate_many(model, prompts, settings, end=end_marker(tokenizer), batch_size=batch_size,
                             progress=progress)
    return [tokenizer.decode(g.ids).strip() for g in done], tokens, time.perf_counter() - t0

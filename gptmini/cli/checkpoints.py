"""``gptmini checkpoints`` and ``gptmini export``."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gptmini import fmt
from gptmini.errors import CheckpointError, ConfigError
from gptmini.interop.gguf import GGUF_DTYPES


def add_parsers(sub) -> None:
    p = sub.add_parser("checkpoints", help="list checkpoints", description="List a run's checkpoints.")
    p.add_argument("path", nargs="?", default="checkpoints", help="a run folder or a folder of runs (checkpoints/)")
    p.set_defaults(run=run_list)
    e = sub.add_parser("export", help="export a model: weights only, a folder transformers loads, or a GGUF file",
                       description="Write a checkpoint's model: --format weights (default) writes its weights (no "
                                   "optimizer) to one .safetensors file; --format hf writes a folder that "
                                   "transformers' GPT2LMHeadModel and AutoTokenizer load, with the same outputs; "
                                   "--format gguf writes one .gguf file that llama.cpp and Ollama run "
                                   "(architecture gpt2, with the tokenizer); --format peft writes a LoRA run's "
                                   "adapters alone, for PEFT. LoRA adapters are merged into every other format.")
    e.add_argument("checkpoint", help="a checkpoint folder, or a run folder (its latest)")
    e.add_argument("--format", choices=("weights", "hf", "gguf", "peft"), default="weights",
                   help="weights: one .safetensors file; hf: a transformers folder (config, weights, tokenizer); "
                        "gguf: one file for llama.cpp / Ollama; peft: a LoRA run's adapter folder")
    e.add_argument("--out", required=True, metavar="FILE.safetensors|DIR|FILE.gguf")
    e.add_argument("--dtype", choices=GGUF_DTYPES, default=None,
                   help="gguf only: how the weight matrices are stored (default f32; norms and biases stay f32)")
    e.add_argument("--ollama", action="store_true",
                   help="gguf only: also write an Ollama Modelfile beside the .gguf file")
    e.add_argument("--force", action="store_true", help="overwrite an existing output file or folder")
    e.set_defaults(run=run_export)


def run_list(args) -> int:
    from gptmini.ckpt.layout import find_run_folders
    from gptmini.ckpt.listing import list_checkpoints

    root = Path(args.path)
    if not root.exists():
        raise CheckpointError(f"no such folder: {root}")
    runs = {run: infos for run in find_run_folders(root) if (infos := list_checkpoints(run))}
    console = Console(width=None if Console().is_terminal else 120)
    if not runs:
        console.print(f"no checkpoints in {root}")
        return 0
    now = time.time()
    for run_dir, infos in runs.items():
        table = Table(title=str(run_dir), title_justify="left")
        for col in ("checkpoint", "step", "epochs", "tokens", "train loss", "val loss", "size", "age", ""):
            table.add_column(col, justify="left" if col in ("checkpoint", "") else "right", no_wrap=True)
        for c in infos:
            marks = " ".join(m for m, on in (("latest", c.is_latest), ("best", c.is_best)) if on)
            if c.error:
                table.add_row(c.name, "?", "", "", "", "", fmt.human_bytes(c.size_bytes), fmt.age(c.mtime, now),
                              "[red]not trusted[/]")
                continue
            table.add_row(c.name, f"{c.step:,}", fmt.epochs(c.epochs_done if c.epochs_done is not None else c.epoch),
                          fmt.human_count(c.tokens_seen), fmt.loss(c.train_loss), fmt.loss(c.val_loss),
                          fmt.human_bytes(c.size_bytes), fmt.age(c.mtime, now), marks)
        console.print(table)
        for c in infos:
            if c.error:
                console.print(f"[red]{c.name}[/]: {escape(c.error)}", highlight=False)
    return 0


def run_export(args) -> int:
    if args.format != "gguf":
        given = [flag for flag, on in (("--dtype", args.dtype is not None), ("--ollama", args.ollama)) if on]
        if given:
            raise ConfigError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to --format gguf")
    if args.format == "gguf":
        return _export_gguf(args)
    if args.format == "peft":
        from gptmini.interop.peft import export_peft

        out = export_peft(args.checkpoint, args.out, force=args.force)
        print(f"wrote {out}/ (adapter_model.safetensors, adapter_config.json); load it onto the base model exported "
              f"with --format hf: peft.PeftModel.from_pretrained(base, {str(out)!r})")
        return 0
    if args.format == "hf":
        from gptmini.interop.hf_export import export_hf

        if args.out.endswith(".safetensors"):
            raise CheckpointError(f"--format hf writes a folder; give --out a folder name, not {args.out}")
        out = export_hf(args.checkpoint, args.out, force=args.force)
        print(f"wrote {out}/ ({', '.join(sorted(p.name for p in out.iterdir()))}); load it with "
              f"transformers.GPT2LMHeadModel.from_pretrained({str(out)!r})")
        return 0
    from gptmini.interop.weights import export_weights

    out = export_weights(args.checkpoint, args.out, force=args.force)
    print(f"wrote {out} ({fmt.human_bytes(out.stat().st_size)})")
    return 0


def _export_gguf(args) -> int:
    from gptmini.interop.gguf import export_gguf

    written, modelfile = export_gguf(args.checkpoint, args.out, dtype=args.dtype or "f32", force=args.force,
                                     ollama=args.ollama)
    notes = []
    if written.zero_biases:
        notes.append(f"{len(written.zero_biases)} biases the model does not have written as zeros")
    if written.kept_f16:
        notes.append(f"{len(written.kept_f16)} matrices kept f16 (rows not a multiple of 32)")
    extra = f"; {'; '.join(notes)}" if notes else ""
    print(f"wrote {written.path} ({fmt.human_bytes(written.path.stat().st_size)}, {written.dtype}, "
          f"{written.n_tensors} tensors{extra})")
    if modelfile is not None:
        print(f"wrote {modelfile}; run it with: ollama create NAME -f {modelfile} && ollama run NAME")
    else:
        print(f"run it with: llama-cli -m {written.path} -c {written.context_length} -p 'Your prompt'")
    return 0

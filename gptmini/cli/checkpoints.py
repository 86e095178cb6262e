"""``gptmini checkpoints`` and ``gptmini export``."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gptmini.errors import CheckpointError


def add_parsers(sub) -> None:
    p = sub.add_parser("checkpoints", help="list checkpoints", description="List a run's checkpoints.")
    p.add_argument("path", nargs="?", default="checkpoints", help="a run folder or a folder of runs (checkpoints/)")
    p.set_defaults(run=run_list)
    e = sub.add_parser("export", help="export weights to one safetensors file",
                       description="Write a checkpoint's model weights (no optimizer) to one .safetensors file.")
    e.add_argument("checkpoint", help="a checkpoint folder, or a run folder (its latest)")
    e.add_argument("--out", required=True, metavar="FILE.safetensors")
    e.set_defaults(run=run_export)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def _loss(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def _epochs(c) -> str:
    if c.epochs_done is not None:
        return f"{c.epochs_done:.2f}"
    return "-" if c.epoch is None else str(c.epoch)


def run_list(args) -> int:
    from gptmini.checkpoint import find_runs, list_checkpoints

    root = Path(args.path)
    if not root.exists():
        raise CheckpointError(f"no such folder: {root}")
    runs = find_runs(root)
    console = Console(width=None if Console().is_terminal else 120)
    if not runs:
        console.print(f"no checkpoints in {root}")
        return 0
    now = time.time()
    for run_dir in runs:
        table = Table(title=str(run_dir), title_justify="left")
        for col in ("checkpoint", "step", "epochs", "tokens", "train loss", "val loss", "size", "age", ""):
            table.add_column(col, justify="left" if col in ("checkpoint", "") else "right", no_wrap=True)
        for c in list_checkpoints(run_dir):
            marks = " ".join(m for m, on in (("latest", c.is_latest), ("best", c.is_best)) if on)
            if c.error:
                marks = "[red]unreadable[/]"
            table.add_row(c.name, str(c.step), _epochs(c),
                          "-" if c.tokens_seen is None else f"{c.tokens_seen:,}", _loss(c.train_loss),
                          _loss(c.val_loss), _size(c.size_bytes), _age(now - c.mtime), marks)
        console.print(table)
    return 0


def run_export(args) -> int:
    from gptmini.checkpoint import export_weights

    out = export_weights(args.checkpoint, args.out)
    print(f"wrote {out} ({_size(out.stat().st_size)})")
    return 0

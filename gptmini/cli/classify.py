"""``gptmini classify``: a classifier's label for texts, with each label's probability.

``gptmini classify --checkpoint RUN "text" ...`` prints one line per text; ``--file texts.txt`` classifies
each line; ``--file data.csv`` (or .tsv/.jsonl) writes the rows back with a ``predicted`` column (and one
probability column per label) to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

from gptmini.errors import CheckpointError, ConfigError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("classify", help="label texts with a classifier (a --task classify run)",
                              description="Label texts with a classifier trained by gptmini train --task classify.")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    p.add_argument("--checkpoint", required=True, metavar="PATH|RUN_DIR",
                   help="a checkpoint folder, or a run folder (its latest checkpoint)")
    p.add_argument("--file", metavar="FILE", help="a .txt (one text per line), or a .csv/.tsv/.jsonl of rows")
    p.add_argument("--text-column", metavar="NAME", help="the rows' text column (default: the run's)")
    p.add_argument("--out", metavar="FILE", help="where the rows go with their predictions (.csv/.tsv/.jsonl; "
                                                  "default: printed)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    from gptmini.paths import check_output_file

    if not args.texts and not args.file:
        raise ConfigError("give texts to classify, or --file FILE")
    if args.out and not args.file:
        raise ConfigError("--out writes the rows of --file with their predictions; give --file")
    out = check_output_file(args.out, force=args.force) if args.out else None
    model, tokenizer, manifest, task = _load(args.checkpoint, args.device)
    labels, pad_id = task["labels"], task.get("pad_id", 0)
    if args.texts:
        for text, probs in zip(args.texts, _probabilities(model, tokenizer, pad_id, args.texts)):
            print(f"{_best(labels, probs)}\t{_shown(labels, probs)}\t{text}")
    if args.file:
        _classify_file(Path(args.file), out, args.text_column or task.get("text_column", "text"), model, tokenizer,
                       pad_id, labels)
    return 0


def _load(checkpoint: str, device: str):
    from gptmini.ckpt.state import load_for_inference, task_name
    from gptmini.train.device import resolve_device

    model, tokenizer, manifest = load_for_inference(checkpoint, device=str(resolve_device(device)))
    if task_name(manifest) != "classify":
        raise CheckpointError(f"{checkpoint} is a {task_name(manifest)} checkpoint; gptmini classify needs a "
                              f"classifier (train one with gptmini train --task classify)")
    return model, tokenizer, manifest, manifest["task"]


def _probabilities(model, tokenizer, pad_id: int, texts: list[str]):
    from gptmini.errors import TokenizerError
    from gptmini.tasks.classify import encode_text, predict

    ids = []
    for i, text in enumerate(texts):
        try:
            ids.append(encode_text(tokenizer, text, pad_id))
        except TokenizerError as exc:
            raise ConfigError(f"text {i + 1}: {exc}") from None
    return predict(model, ids, pad_id).tolist()


def _best(labels: list[str], probs: list[float]) -> str:
    return labels[max(range(len(probs)), key=probs.__getitem__)]


def _shown(labels: list[str], probs: list[float]) -> str:
    return " · ".join(f"{name} {p:.3f}" for name, p in sorted(zip(labels, probs), key=lambda lp: -lp[1]))


def _classify_file(path: Path, out: Path | None, text_column: str, model, tokenizer, pad_id: int,
                   labels: list[str]) -> None:
    if path.suffix.lower() in (".txt", ""):
        try:
            texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path} ({exc})") from None
        for text, probs in zip(texts, _probabilities(model, tokenizer, pad_id, texts)):
            print(f"{_best(labels, probs)}\t{_shown(labels, probs)}\t{text}")
        return
    from gptmini.data.labelled import read_rows

    header, rows = read_rows(path, text_column)
    texts = [row[text_column] for row in rows]
    for row, probs in zip(rows, _probabilities(model, tokenizer, pad_id, texts)):
        row["predicted"] = _best(labels, probs)
        row.update({f"p_{name}": round(p, 6) for name, p in zip(labels, probs)})
    columns = [*header, "predicted", *(f"p_{name}" for name in labels)]
    _write_rows(out, path.suffix.lower(), columns, rows)


def _write_rows(out: Path | None, suffix: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    fmt = out.suffix.lower() if out is not None else suffix
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}") if out is not None else None
    try:
        with (open(tmp, "w", encoding="utf-8", newline="") if tmp is not None else _stdout()) as fh:
            if fmt in (".jsonl", ".json"):
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                writer = csv.DictWriter(fh, columns, delimiter="\t" if fmt == ".tsv" else ",")
                writer.writeheader()
                writer.writerows(rows)
        if tmp is not None:
            os.replace(tmp, out)
            print(f"wrote {out} ({len(rows)} rows, column 'predicted')", file=sys.stderr)
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


class _stdout:
    def __enter__(self):
        return sys.stdout

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()

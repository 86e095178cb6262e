"""Labelled texts for classification (the book's chapter 6): read and checked, balanced, split, and padded
into batches whose one target per text sits on its last real token.

A file is CSV or TSV (with a header row; or without one, its columns named by number: ``--text-column 1
--label-column 0`` reads the SMS Spam Collection's ``label<TAB>text``), or JSON Lines with a text and a
label field. Labels are mapped to ids in sorted order (ham 0, spam 1, as the book). Every problem is one
``CorpusError`` naming the place.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gptmini.data.batch import IGNORE_INDEX
from gptmini.data.named import read_text_file
from gptmini.errors import CorpusError

SPLIT_FRACTIONS = (0.70, 0.10)  # train, validation; the rest (20 %) is the test split, as the book's random_split
csv.field_size_limit(1 << 24)


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: str
    index: int  # its row in the file (0-based, header not counted)
    source: dict[str, Any] = field(repr=False, compare=False)  # the row as read


def read_labelled(path: str | Path, text_column: str, label_column: str) -> list[LabelledText]:
    """Every row of ``path`` as (text, label), checked. Columns are names (a header row), or 0-based numbers
    (no header)."""
    path = Path(path).expanduser()
    text = read_text_file(path, "labelled data is one .csv, .tsv or .jsonl file")
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = _json_rows(path, text, text_column, label_column)
    else:
        rows = _table_rows(path, text, text_column, label_column)
    if not rows:
        raise CorpusError(f"{path} holds no rows")
    return rows


def _table_rows(path: Path, text: str, text_column: str, label_column: str) -> list[LabelledText]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" or ("\t" in text[:4096] and "," not in text[:4096]) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    numbered = text_column.isdecimal() and label_column.isdecimal()
    try:
        header = None if numbered else next(reader, None)
        if header is not None:
            missing = [c for c in (text_column, label_column) if c not in header]
            if missing:
                raise CorpusError(f"{path} has no column {missing[0]!r} (its columns: {_names(header)}); name "
                                  f"them with --text-column and --label-column, or give their numbers")
            ti, li = header.index(text_column), header.index(label_column)
        elif not numbered:
            return []  # no header row: the file holds nothing
        else:
            ti, li = int(text_column), int(label_column)
        width = len(header) if header is not None else None
        rows = []
        for row in reader:
            if not row or row == [""]:
                continue
            if width is None:
                width = len(row)
                if max(ti, li) >= width:
                    raise CorpusError(f"{path} has {width} columns; column {max(ti, li)} does not exist")
            if len(row) != width:
                raise CorpusError(f"{path}, line {reader.line_num}: {len(row)} fields where the file has {width} "
                                  f"(a ragged row)")
            rows.append(LabelledText(row[ti], row[li].strip(), len(rows), dict(enumerate(row))))
    except csv.Error as exc:
        raise CorpusError(f"{path}, line {reader.line_num}: not valid {'TSV' if delimiter == chr(9) else 'CSV'} "
                          f"({exc})") from None
    return rows


def _json_rows(path: Path, text: str, text_column: str, label_column: str) -> list[LabelledText]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path} is not valid JSON Lines at line {number}, column {exc.colno}: "
                              f"{exc.msg}") from None
        if not isinstance(item, dict):
            raise CorpusError(f"{path}, line {number}: {type(item).__name__}, not an object")
        for name in (text_column, label_column):
            if name not in item:
                raise CorpusError(f"{path}, line {number} has no field {name!r} (it has "
                                  f"{', '.join(map(repr, item)) or 'none'}); name it with --text-column / "
                                  f"--label-column")
        if not isinstance(item[text_column], str):
            raise CorpusError(f"{path}, line {number}: {text_column!r} is {type(item[text_column]).__name__}, "
                              f"not text")
        label = item[label_column]
        if not isinstance(label, (str, int)) or isinstance(label, bool):
            raise CorpusError(f"{path}, line {number}: the label {label!r} is neither text nor a whole number")
        rows.append(LabelledText(item[text_column], str(label), len(rows), item))
    return rows


def label_names(rows: list[LabelledText], where: str) -> list[str]:
    """The labels, sorted (their position is their id); one class alone is refused."""
    names = sorted({r.label for r in rows})
    if len(names) < 2:
        raise CorpusError(f"{where}: every row has the label {names[0]!r}; a classifier needs at least two")
    return names


def balanced(rows: list[LabelledText], seed: int) -> list[LabelledText]:
    """Every class undersampled to the size of the smallest, by ``seed`` (the book's create_balanced_dataset)."""
    counts = Counter(r.label for r in rows)
    smallest = min(counts.values())
    rng = np.random.default_rng(seed)
    keep = []
    for label in sorted(counts):
        members = [r for r in rows if r.label == label]
        chosen = sorted(rng.choice(len(members), smallest, replace=False).tolist())
        keep += [members[i] for i in chosen]
    return keep


def split_rows(n: int, seed: int) -> dict[str, list[int]]:
    """Row positions of the train, validation and test splits: 70 / 10 / 20 % of a permutation by ``seed``."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_train, n_val = int(n * SPLIT_FRACTIONS[0]), int(n * SPLIT_FRACTIONS[1])
    return {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}


def collate_labelled(ids: list[np.ndarray], labels: list[int], pad_id: int, width: int | None = None):
    """``(x, y, n_real)``: texts padded with ``pad_id`` to ``width`` (default: the longest), the label as the
    target of each text's last real token and ``IGNORE_INDEX`` everywhere else (padding never decides)."""
    import torch

    width = width or max(len(t) for t in ids)
    x = np.full((len(ids), width), pad_id, dtype=np.int64)
    y = np.full((len(ids), width), IGNORE_INDEX, dtype=np.int64)
    for row, (t, label) in enumerate(zip(ids, labels)):
        x[row, : len(t)] = t
        y[row, len(t) - 1] = label
    return torch.from_numpy(x), torch.from_numpy(y), int(sum(len(t) for t in ids))


def read_rows(path: str | Path, text_column: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The rows of a CSV/TSV (with a header; without one its columns are named "0", "1", ...) or JSONL file as
    dicts, for ``gptmini classify --file``; ``text_column`` must be among them."""
    path = Path(path).expanduser()
    text = read_text_file(path, "give a .csv, .tsv, .jsonl or .txt file")
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = [_json_object(path, number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
        header = list(rows[0]) if rows else []
    else:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        table = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if row]
        numbered = text_column.isdecimal()
        header = [str(i) for i in range(len(table[0]))] if table and numbered else (table[:1] or [[]])[0]
        body = table if numbered else table[1:]
        for number, row in enumerate(body, 1 if numbered else 2):
            if len(row) != len(header):
                raise CorpusError(f"{path}, row {number}: {len(row)} fields where the file has {len(header)}")
        rows = [dict(zip(header, row)) for row in body]
    if text_column not in header:
        raise CorpusError(f"{path} has no column {text_column!r} (its columns: {_names(header)}); name it with "
                          f"--text-column")
    return header, rows


def _names(header: list[str]) -> str:
    """A header's column names on one line (a name may hold a line break)."""
    return ", ".join(name if name.isprintable() else repr(name) for name in header) or "none"


def _json_object(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path} is not valid JSON Lines at line {number}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(item, dict):
        raise CorpusError(f"{path}, line {number}: {type(item).__name__}, not an object")
    return item

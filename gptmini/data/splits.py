"""Which records train, validate and test a fine-tuning run: shares of ``--data`` by the run's seed, or
files of their own (``--val-data``, ``--test-data``). The split is written into the run folder
(``split.json``: for each part, its file, the file's sha256 and the records' positions), so that a resume,
``gptmini respond`` and ``gptmini classify`` use the same records, and is checked against the files then.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from gptmini.errors import CorpusError

SPLIT_FILE = "split.json"
PARTS = ("train", "val", "test")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(Path(path).expanduser(), "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shares(n: int, seed: int, fractions: dict[str, float | None]) -> dict[str, list[int]]:
    """Positions ``0..n-1`` permuted by ``seed`` and cut in ``fractions``' order; the part whose share is None
    takes the rest (the book's arithmetic: ``int(n * share)`` each)."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    out, start = {}, 0
    for name, share in fractions.items():
        if share is None:
            continue
        out[name] = order[start:start + int(n * share)]
        start += int(n * share)
    rest = [name for name, share in fractions.items() if share is None]
    out[rest[0]] = order[start:]
    return out


def make_split(paths: dict[str, str | None], sizes: dict[str, int], seed: int,
               fractions: dict[str, float | None]) -> dict[str, Any]:
    """The split of a new run. ``paths``/``sizes``: each part's file (``val``/``test`` may be None) and its
    number of records. With ``--val-data`` given, all of ``--data`` trains (and tests only if no test file)."""
    n = sizes["train"]
    own = shares(n, seed, fractions) if paths["val"] is None else {"train": list(range(n)), "val": [], "test": []}
    split: dict[str, Any] = {"seed": seed}
    for name in PARTS:
        if name != "train" and paths[name] is not None:  # a file of its own
            split[name] = {"file": name, "path": paths[name], "sha256": file_sha256(paths[name]),
                           "indices": list(range(sizes[name]))}
        else:  # records of --data
            split[name] = {"file": "train", "path": paths["train"], "sha256": file_sha256(paths["train"]),
                           "indices": own[name]}
    return split


def read_split(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / SPLIT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CorpusError(f"{path} is not readable JSON ({exc})") from None


def check_split(split: dict[str, Any], paths: dict[str, str | None]) -> None:
    """A resumed run's split must still describe the files it was made from."""
    for name in PARTS:
        part = split[name]
        path = paths["train"] if part["file"] == "train" else paths[name]
        if path is None or file_sha256(path) != part["sha256"]:
            raise CorpusError(f"{SPLIT_FILE} of the run names {part['path']} (sha256 {part['sha256'][:12]}), "
                              f"which is not the data given now; resume with the same data")


def split_digest(split: dict[str, Any]) -> str:
    """What each checkpoint records of the split (a resume compares the file with it)."""
    return hashlib.sha256(json.dumps(split, sort_keys=True).encode()).hexdigest()

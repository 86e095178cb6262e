"""Data sets a fine-tuning run can name instead of a path: fetched once into the cache, checked by sha256
(``text.fetch``). Offline, one line says to download the file and pass its path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gptmini.errors import ConfigError
from gptmini.text.corpus import cache_root
from gptmini.text.fetch import fetch_file

NAMED_DATA: dict[str, dict[str, Any]] = {
    "instruction-data": {
        "kind": "instructions",
        "url": ("https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
                "ch07/01_main-chapter-code/instruction-data.json"),
        "sha256": "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
        "size": 203_524,
        "filename": "instruction-data.json",
        "description": "the book's chapter 7 data: 1,100 instruction/input/output records",
    },
}
KINDS = {"instructions": "instruction records (.json/.jsonl)", "labelled": "labelled texts (.csv/.tsv/.jsonl)"}


def named_data_names(kind: str) -> list[str]:
    return [name for name, info in NAMED_DATA.items() if info["kind"] == kind]


def fetch_named_data(spec: str, *, kind: str, url_opener: Callable[..., Any] | None = None) -> Path:
    """The cached file of the data set ``spec`` names (its name, or its file name), downloaded once."""
    name = next((n for n, info in NAMED_DATA.items() if spec in (n, info["filename"])), None)
    if name is None or NAMED_DATA[name]["kind"] != kind:
        known = ", ".join(named_data_names(kind)) or "none yet"
        raise ConfigError(f"--data {spec}: no such file, and not the name of a data set of "
                          f"{KINDS[kind]} (known: {known})")
    return fetch_file(name, NAMED_DATA[name], cache_root() / "datasets", url_opener=url_opener)

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
# The book's chapter 6 data. Its sha256 could not be measured where this was written (no network), so the
# extracted file is checked by its content instead: the book's 4,825 ham and 747 spam messages.
NAMED_DATA["sms-spam"] = {
    "kind": "labelled",
    "url": "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
    "sha256": None,
    "size": 210_000,
    "filename": "sms+spam+collection.zip",
    "member": "SMSSpamCollection",
    "extracted": "SMSSpamCollection.tsv",
    "counts": {"ham": 4825, "spam": 747},
    "columns": ("1", "0"),  # label<TAB>text, no header
    "description": "the UCI SMS Spam Collection (the book's chapter 6): label, tab, message",
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
    info, folder = NAMED_DATA[name], cache_root() / "datasets"
    if "member" not in info:
        return fetch_file(name, info, folder, url_opener=url_opener)
    extracted = folder / info["extracted"]
    if not (extracted.is_file() and _content_ok(extracted, info)):
        _extract(name, fetch_file(name, info, folder, url_opener=url_opener), extracted, info)
    return extracted


def _content_ok(path: Path, info: dict[str, Any]) -> bool:
    from collections import Counter

    from gptmini.data.labelled import read_labelled
    from gptmini.errors import CorpusError

    try:
        counts = Counter(r.label for r in read_labelled(path, *info["columns"]))
    except CorpusError:
        return False
    return dict(counts) == info["counts"]


def _extract(name: str, archive: Path, target: Path, info: dict[str, Any]) -> None:
    """``info["member"]`` of the zip ``archive`` as ``target``, kept only when its content is what it should be."""
    import os
    import zipfile

    from gptmini.errors import CorpusError

    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(info["member"]) as src, open(tmp, "wb") as out:
            out.write(src.read())
        if not _content_ok(tmp, info):
            raise CorpusError(f"{archive} holds a {info['member']} that is not the {name} data set (expected "
                              f"{', '.join(f'{n:,} {k}' for k, n in info['counts'].items())} rows)")
        os.replace(tmp, target)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise CorpusError(f"{archive} is not the {name} archive ({exc}); delete it and try again") from None
    finally:
        tmp.unlink(missing_ok=True)


def data_file(data: list[str] | None, *, task: str, kind: str) -> str:
    """The one file ``--data`` names for a fine-tuning ``task``: a path, or the name of a data set of ``kind``
    (downloaded once). A text corpus, several files or none: one line each."""
    what = KINDS[kind]
    if not data:
        known = " or ".join(named_data_names(kind))
        raise ConfigError(f"--task {task} needs --data FILE: {what}" + (f" (or {known})" if known else ""))
    if len(data) > 1:
        raise ConfigError(f"--task {task} takes one --data file (got {len(data)}); give the validation and test "
                          f"sets with --val-data and --test-data")
    spec = data[0]
    if Path(spec).expanduser().exists():
        if Path(spec).suffix.lower() in (".txt", ".md"):
            raise ConfigError(f"--task {task} reads {what}, not a text corpus like {spec}; pre-train on text with "
                              f"--task pretrain")
        return str(Path(spec).expanduser())
    return str(fetch_named_data(spec, kind=kind))


def read_text_file(path: str | Path, what: str) -> str:
    """A data file's text (UTF-8, a BOM dropped); one ``CorpusError`` naming the file otherwise."""
    from gptmini.errors import CorpusError

    path = Path(path).expanduser()
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder; {what}") from None
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise CorpusError(f"cannot read {path} ({exc.strerror or exc})") from None

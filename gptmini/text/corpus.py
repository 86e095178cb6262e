"""Training text: the embedded default, named downloadable corpora, or the user's files.

A :class:`Corpus` is a list of documents. Small ones are held as strings; files
are validated once (UTF-8, not binary, not empty, sha256) and then streamed in
blocks, so a large corpus never has to sit in memory as one string.
``corpus.text`` joins the documents with a blank line (``"\\n\\n"``); the data
pipeline (``gptmini.data``) instead puts the tokenizer's end-of-text token
between documents when it has one (gpt2), so no marker text leaks into a char
vocabulary.
"""

from __future__ import annotations

import codecs
import glob
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from gptmini.errors import ConfigError, CorpusError
from gptmini.stopping import check_stop
from gptmini.text.fetch import DOWNLOAD_TIMEOUT_S, fetch_file  # noqa: F401 - the timeout is part of this API

EMBEDDED_CORPUS = "python-reference"
DEFAULT_CORPUS = EMBEDDED_CORPUS
DOC_SEPARATOR = "\n\n"
TEXT_SUFFIXES = (".txt", ".md")
BLOCK_BYTES = 4 << 20  # read files 4 MiB at a time

NAMED_CORPORA: dict[str, dict[str, Any]] = {
    "the-verdict": {
        "url": (
            "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
            "ch02/01_main-chapter-code/the-verdict.txt"
        ),
        "sha256": "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f",
        "size": 20_479,
        "filename": "the-verdict.txt",
        "description": "Edith Wharton's short story used in Raschka's book (20 KB)",
    },
    "tiny-shakespeare": {
        "url": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "sha256": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "size": 1_115_394,
        "filename": "tinyshakespeare.txt",
        "description": "Karpathy's tiny Shakespeare (1.1 MB)",
    },
}
CORPUS_NAMES: tuple[str, ...] = (EMBEDDED_CORPUS, *NAMED_CORPORA)


def cache_root() -> Path:
    """``$GPTMINI_CACHE_DIR`` if set, else the platform's user cache folder for gptmini."""
    env = os.environ.get("GPTMINI_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("gptmini"))


def corpus_cache_dir() -> Path:
    """Where downloaded named corpora are kept."""
    return cache_root() / "corpora"


def human_size(n_bytes: int) -> str:
    if n_bytes < 1000:
        return f"{n_bytes} B"
    for unit, scale in (("KB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if n_bytes < scale * 1000 or unit == "GB":
            value = n_bytes / scale
            return f"{value:.0f} {unit}" if value >= 100 or unit == "KB" else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- documents backed by files --------------------------------------------------------


@dataclass(frozen=True)
class FileDocument:
    """A validated UTF-8 text file, read on demand (a leading BOM is skipped)."""

    path: Path
    n_bytes: int  # UTF-8 bytes of the text (without a BOM)
    sha256: str  # of those bytes
    bom: bool = False

    def blocks(self, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[str, int]]:
        """Yield ``(text, n_bytes)`` blocks; raises CorpusError if the file changed since it was checked."""
        scan = _FileScan(self.path)
        yield from scan.blocks(block_bytes)
        if scan.sha256 != self.sha256:
            raise CorpusError(f"{self.path} changed while it was being read; run again")

    def read_text(self) -> str:
        return "".join(text for text, _ in self.blocks())


class _FileScan:
    """One pass over a file: decode UTF-8 incrementally, hash, find NULs and blank files."""

    def __init__(self, path: Path):
        self.path = path
        self.sha256 = ""
        self.n_bytes = 0
        self.bom = False
        self.blank = True

    def blocks(self, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[str, int]]:
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        hasher = hashlib.sha256()
        offset = 0  # file offset of the next block
        try:
            with open(self.path, "rb") as f:
                while True:
                    check_stop()  # a stop request ends the reading between two blocks
                    data = f.read(block_bytes)
                    if offset == 0 and data.startswith(codecs.BOM_UTF8):
                        self.bom = True
                        data, offset = data[3:], 3
                    final = not data
                    text = self._decode(decoder, data, offset, final)
                    hasher.update(data)
                    self.n_bytes += len(data)
                    offset += len(data)
                    if self.blank and text and not text.isspace():
                        self.blank = False
                    if text or data:
                        yield text, len(data)
                    if final:
                        break
        except OSError as e:
            raise CorpusError(f"cannot read {self.path}: {e.strerror or e}") from None
        self.sha256 = hasher.hexdigest()

    def _decode(self, decoder: codecs.IncrementalDecoder, data: bytes, offset: int, final: bool) -> str:
        pending = len(decoder.getstate()[0])
        nul = data.find(b"\x00")
        try:
            text = decoder.decode(data, final=final)
        except UnicodeDecodeError as e:
            bad = offset - pending + e.start
            if nul >= 0 and offset + nul < bad:
                raise self._binary(offset + nul) from None
            raise CorpusError(
                f"{self.path} is not UTF-8 text: invalid byte 0x{e.object[e.start]:02X} at byte offset {bad}; "
                "convert it to UTF-8 (for example: iconv -f latin1 -t utf-8)"
            ) from None
        if nul >= 0:
            raise self._binary(offset + nul)
        return text

    def _binary(self, at: int) -> CorpusError:
        return CorpusError(
            f"{self.path} looks like a binary file (NUL byte at byte offset {at}); pass UTF-8 text files"
        )


def scan_file(path: Path) -> FileDocument | None:
    """Validate a text file in one streaming pass; None if it holds only whitespace."""
    scan = _FileScan(path)
    for _ in scan.blocks():
        pass
    if scan.blank:
        return None
    return FileDocument(path=path, n_bytes=scan.n_bytes, sha256=scan.sha256, bom=scan.bom)


# -- the corpus -----------------------------------------------------------------------

Document = str | FileDocument


class Corpus:
    """Named training text made of one or more documents.

    ``Corpus(name, text)`` wraps a string; ``Corpus(name, documents=[...])`` takes
    strings and/or :class:`FileDocument` s. Whitespace-only documents are dropped;
    a corpus with no text left raises CorpusError.
    """

    def __init__(
        self,
        name: str,
        text: str | None = None,
        sources: Sequence[str] | None = None,
        *,
        documents: Sequence[Document] | None = None,
    ):
        if (text is None) == (documents is None):
            raise ValueError("give a Corpus either text or documents")
        docs = [text] if text is not None else list(documents or [])
        self._docs: list[Document] = [d for d in docs if isinstance(d, FileDocument) or (d and not d.isspace())]
        if not self._docs:
            raise CorpusError(f"the corpus {name!r} is empty (no text after stripping whitespace)")
        self.name = name
        self.sources = list(sources) if sources is not None else [name]

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, {self.n_documents} documents, {self.n_bytes} bytes)"

    @property
    def n_documents(self) -> int:
        return len(self._docs)

    @property
    def documents(self) -> list[str]:
        """Every document's text (reads files; prefer ``iter_blocks`` for big corpora)."""
        return [d if isinstance(d, str) else d.read_text() for d in self._docs]

    @cached_property
    def text(self) -> str:
        """The documents joined by blank lines (materialised and kept on first use)."""
        if len(self._docs) == 1 and isinstance(self._docs[0], str):
            return self._docs[0]
        return DOC_SEPARATOR.join(self.documents)

    @cached_property
    def _stats(self) -> list[tuple[int, str]]:
        return [
            (len(d.encode("utf-8")), _sha256_text(d)) if isinstance(d, str) else (d.n_bytes, d.sha256)
            for d in self._docs
        ]

    @property
    def n_bytes(self) -> int:
        """UTF-8 size of ``text``."""
        return sum(n for n, _ in self._stats) + len(DOC_SEPARATOR) * (len(self._docs) - 1)

    @property
    def fingerprint(self) -> str:
        """sha256 identifying the documents' contents and boundaries."""
        return hashlib.sha256("\n".join(h for _, h in self._stats).encode()).hexdigest()

    def describe(self) -> str:
        """Short human form, e.g. ``"python-reference (466 KB)"``."""
        files = f"{self.n_documents} files, " if self.n_documents > 1 else ""
        return f"{self.name} ({files}{human_size(self.n_bytes)})"

    def doc_blocks(self, index: int, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[str, int]]:
        """``(text, n_bytes)`` blocks of one document."""
        doc = self._docs[index]
        if isinstance(doc, FileDocument):
            yield from doc.blocks(block_bytes)
            return
        step = max(1, block_bytes // 4)
        for start in range(0, len(doc), step):
            piece = doc[start : start + step]
            yield piece, len(piece.encode("utf-8"))

    def iter_blocks(self, separator: str = DOC_SEPARATOR, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[str, int]]:
        """``(text, n_bytes)`` blocks of all documents with ``separator`` between them.

        ``n_bytes`` counts bytes of ``self.text`` (a separator counts as the two
        bytes of ``"\\n\\n"``), so the counts add up to ``n_bytes`` for progress bars.
        """
        for i in range(len(self._docs)):
            if i:
                yield separator, len(DOC_SEPARATOR)
            yield from self.doc_blocks(i, block_bytes)

    def iter_text(self, block_bytes: int = BLOCK_BYTES) -> Iterator[str]:
        """Pieces of ``text`` in order, without joining them (e.g. for a char vocabulary)."""
        for piece, _ in self.iter_blocks(DOC_SEPARATOR, block_bytes):
            yield piece


# -- loading ----------------------------------------------------------------------------


def load_corpus(
    data: Sequence[str | os.PathLike] | str | os.PathLike | None = None,
    corpus: str | None = None,
    *,
    cache_dir: Path | None = None,
) -> Corpus:
    """The user's files (``data``: files, directories, globs), a named corpus, or the default.

    With neither, the embedded ``python-reference`` corpus is used (no network).
    ``cache_dir`` is where named corpora are downloaded (default ``corpus_cache_dir()``).
    """
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    if data and corpus:
        raise ConfigError("give either --data or --corpus, not both")
    if data:
        return _load_files([os.fspath(d) for d in data])
    name = corpus or DEFAULT_CORPUS
    if name == EMBEDDED_CORPUS:
        return Corpus(EMBEDDED_CORPUS, python_reference_text(), sources=["pydoc_data.topics (embedded in Python)"])
    path = fetch_named_corpus(name, cache_dir)
    doc = scan_file(path)
    if doc is None:
        raise CorpusError(f"the cached corpus file {path} is empty")
    return Corpus(name, documents=[doc], sources=[str(path)])


def python_reference_text() -> str:
    """Every topic of Python's built-in help (``pydoc_data.topics``), sorted, joined by blank lines."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise CorpusError(
            "this Python has no pydoc_data module for the embedded python-reference corpus; "
            "pass --data PATH or --corpus tiny-shakespeare"
        ) from None
    return DOC_SEPARATOR.join(str(topics[key]).strip("\n") for key in sorted(topics))


def check_data_paths(args: Sequence[str]) -> None:
    """Every ``--data`` argument names existing text (files, folders with .txt/.md, or globs that match)."""
    for arg in args:
        _expand(os.fspath(arg))


def _load_files(args: list[str]) -> Corpus:
    paths: list[Path] = []
    seen: set[Path] = set()
    for arg in args:
        for path in _expand(arg):
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                paths.append(path)
    docs = [doc for doc in (scan_file(p) for p in paths) if doc is not None]
    if not docs:
        listed = ", ".join(str(p) for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
        raise CorpusError(f"the corpus is empty: {listed} contain(s) only whitespace")
    name = _corpus_name(args)
    return Corpus(name, documents=docs, sources=[str(d.path) for d in docs])


def _expand(arg: str) -> list[Path]:
    path = Path(arg).expanduser()
    if path.is_dir():
        return _text_files_in(path, arg)
    if path.is_file():
        return [path]
    if path.exists() or path.is_symlink():
        raise CorpusError(f"{arg} is {_kind(path)}, not a text file or a folder of them")
    if any(c in arg for c in "*?["):
        matches = sorted(glob.glob(os.path.expanduser(arg), recursive=True))
        if not matches:
            raise CorpusError(f"no files match {arg}")
        return [p for m in matches for p in _expand(m)]
    raise CorpusError(f"no such file or directory: {arg}")


def _text_files_in(folder: Path, arg: str) -> list[Path]:
    named = sorted(p for p in folder.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and not p.is_dir())
    for p in named:
        if not p.is_file():  # a FIFO would block the read forever; a broken link cannot be read
            raise CorpusError(f"{p} is {_kind(p)}, not a text file; move it out of {arg} or pass the files "
                              "themselves")
    if not named:
        raise CorpusError(f"directory {arg} has no .txt or .md files")
    return named


def _kind(path: Path) -> str:
    """What a path that is neither a regular file nor a folder is: ``"a FIFO (named pipe)"``, ..."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        return "a broken symbolic link" if path.is_symlink() else "unreadable"
    for test, kind in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def _corpus_name(args: list[str]) -> str:
    first = Path(args[0]).expanduser()
    if first.is_file():
        label = first.stem
    elif first.is_dir():
        label = first.resolve().name or str(first)
    else:
        label = args[0]  # a glob pattern
    return label if len(args) == 1 else f"{label} + {len(args) - 1} more"


# -- named corpora ----------------------------------------------------------------------


def fetch_named_corpus(
    name: str,
    cache_dir: Path | None = None,
    *,
    url_opener: Callable[..., Any] | None = None,
) -> Path:
    """Path of a named corpus in the cache, downloading it first if needed (``text.fetch.fetch_file``)."""
    info = NAMED_CORPORA.get(name)
    if info is None:
        raise CorpusError(f"unknown corpus {name!r}; choose one of: {', '.join(CORPUS_NAMES)}")
    return fetch_file(name, info, Path(cache_dir) if cache_dir is not None else corpus_cache_dir(),
                      url_opener=url_opener)

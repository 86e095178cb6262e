"""Token cache and train/val split.

``TokenData.build`` tokenises a corpus once, streaming it through the tokenizer
into a flat raw file of uint16/uint32 ids in the cache folder (named by the
corpus fingerprint and the tokenizer description), then memory-maps it. A second
run with the same text and tokenizer opens the file instantly.

Documents are separated by the tokenizer's end-of-text token when it has one
(gpt2: ``<|endoftext|>`` = 50256) and by a blank line otherwise (char).

Windows and batches over the tokens are ``data.windows``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gptmini.errors import ConfigError, CorpusError
from gptmini.text.corpus import DOC_SEPARATOR, Corpus, cache_root
from gptmini.text.tokenizer import EOT_TEXT, Tokenizer

if TYPE_CHECKING:
    import torch

CACHE_FORMAT = 1
ProgressFn = Callable[[int, int], None]
Batch = tuple["torch.Tensor", "torch.Tensor"]  # torch is imported when batches are made


def tokens_cache_dir() -> Path:
    """Where token caches live: ``$GPTMINI_CACHE_DIR/tokens`` or the user cache folder."""
    return cache_root() / "tokens"


def document_separator(tokenizer: Tokenizer) -> str:
    """Text put between documents: the end-of-text marker for gpt2, a blank line for char."""
    if tokenizer.eot_id is not None and tokenizer.encode(EOT_TEXT) == [tokenizer.eot_id]:
        return EOT_TEXT
    return DOC_SEPARATOR


def cache_key(corpus: Corpus, tokenizer: Tokenizer) -> str:
    blob = json.dumps(
        {"format": CACHE_FORMAT, "corpus": corpus.fingerprint, "tokenizer": tokenizer.description_hash()},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass
class TokenData:
    """All tokens of a corpus (usually a read-only memmap) and their train/val split."""

    tokens: np.ndarray = field(repr=False)
    n_train: int
    val_fraction: float = 0.1
    path: Path | None = None
    from_cache: bool = False

    @property
    def train(self) -> np.ndarray:
        return self.tokens[: self.n_train]

    @property
    def val(self) -> np.ndarray:
        return self.tokens[self.n_train :]

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_val(self) -> int:
        return self.n_tokens - self.n_train

    @property
    def dtype(self) -> np.dtype:
        return self.tokens.dtype

    @classmethod
    def from_tokens(cls, tokens: np.ndarray | list[int], val_fraction: float = 0.1) -> "TokenData":
        """In-memory token data (tests, small experiments)."""
        arr = np.asarray(tokens)
        if arr.ndim != 1 or arr.size == 0:
            raise CorpusError("token data must be a non-empty 1-D sequence of ids")
        return cls(tokens=arr, n_train=split_point(arr.size, val_fraction), val_fraction=val_fraction)

    @classmethod
    def build(
        cls,
        corpus: Corpus,
        tokenizer: Tokenizer,
        *,
        cache_dir: Path | None = None,
        val_fraction: float = 0.1,
        progress: ProgressFn | None = None,
    ) -> "TokenData":
        """Tokenise ``corpus`` into the cache (or reuse the cached file) and memory-map it.

        ``progress(done_bytes, total_bytes)`` follows the corpus bytes read.
        """
        folder = Path(cache_dir) if cache_dir is not None else tokens_cache_dir()
        path = folder / f"{cache_key(corpus, tokenizer)}.{tokenizer.dtype.name}.bin"
        from_cache = _usable(path, tokenizer.dtype)
        if not from_cache:
            _write_tokens(corpus, tokenizer, path, progress)
        elif progress is not None:
            progress(corpus.n_bytes, corpus.n_bytes)
        tokens = np.memmap(path, dtype=tokenizer.dtype, mode="r")
        n_train = split_point(tokens.shape[0], val_fraction)
        return cls(tokens=tokens, n_train=n_train, val_fraction=val_fraction, path=path, from_cache=from_cache)


class TokenisingProgress:
    """``TokenData.build``'s progress calls as ``DataProgress`` events: at most 5 per second, then ``finish``."""

    def __init__(self, emit: Callable[[Any], None], corpus: Corpus, tokenizer_name: str) -> None:
        self.emit, self.corpus, self.tokenizer_name = emit, corpus, tokenizer_name
        self.t0 = self._last = time.perf_counter()

    def _event(self, done: int, from_cache: bool):
        from gptmini.events import DataProgress

        return DataProgress(corpus=self.corpus.name, tokenizer=self.tokenizer_name, done_bytes=done,
                            total_bytes=self.corpus.n_bytes, from_cache=from_cache,
                            elapsed_s=time.perf_counter() - self.t0)

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self._last >= 0.2:
            self._last = now
            self.emit(self._event(done, False))

    def finish(self, token_data: TokenData) -> None:
        self.emit(self._event(self.corpus.n_bytes, token_data.from_cache))


def tokenize_corpus(
    corpus: Corpus, tokenizer: str | Tokenizer, *, val_fraction: float = 0.1, progress: ProgressFn | None = None
) -> tuple[Tokenizer, TokenData]:
    """The tokenizer for ``corpus`` and its cached token data.

    ``tokenizer`` is a name (a char vocabulary is then read from the corpus) or a tokenizer already
    built (a resumed run's). Used by the engine before a run and by ``gptmini prepare``; it never
    imports torch.
    """
    from gptmini.text.tokenizer import build_tokenizer

    if isinstance(tokenizer, str):
        tokenizer = build_tokenizer(tokenizer, corpus.iter_text() if tokenizer == "char" else None)
    return tokenizer, TokenData.build(corpus, tokenizer, val_fraction=val_fraction, progress=progress)


def split_point(n_tokens: int, val_fraction: float) -> int:
    """Number of train tokens: the first ``1 - val_fraction`` of the tokens."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    return int(n_tokens * (1 - val_fraction))


def _usable(path: Path, dtype: np.dtype) -> bool:
    try:
        size = path.stat().st_size
    except OSError:
        return False
    return size > 0 and size % dtype.itemsize == 0


def _write_tokens(corpus: Corpus, tokenizer: Tokenizer, path: Path, progress: ProgressFn | None) -> None:
    """Stream the corpus through the tokenizer into ``path`` (tmp file + atomic rename)."""
    total = corpus.n_bytes
    read = 0

    def blocks() -> Iterator[str]:
        nonlocal read
        for text, n_bytes in corpus.iter_blocks(document_separator(tokenizer)):
            yield text
            read += n_bytes

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        n_tokens = 0
        with open(tmp, "wb") as out:
            for arr in tokenizer.encode_stream(blocks()):
                arr.astype(tokenizer.dtype, copy=False).tofile(out)
                n_tokens += arr.shape[0]
                if progress is not None:
                    progress(min(read, total), total)
        if n_tokens == 0:
            raise CorpusError(f"the corpus {corpus.name!r} produced no tokens")
        os.replace(tmp, path)
    except OSError as e:
        raise CorpusError(
            f"cannot write the token cache in {path.parent} ({e.strerror or e}); "
            "set GPTMINI_CACHE_DIR to a writable folder"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    if progress is not None:
        progress(total, total)


# -- windows and batches -------------------------------------------------------------

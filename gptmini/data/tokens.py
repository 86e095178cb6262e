"""Token cache and train/val split.

``TokenData.build`` tokenises a corpus once, streaming it through the tokenizer
into a file of uint16/uint32 ids in the cache folder (named by the corpus
fingerprint and the tokenizer description), then memory-maps it. A second run
with the same text and tokenizer opens the file at once, after checking its size
and checksum (``data.token_file``); a damaged file is tokenised again, with a
warning. A stop request (``stopping``) ends the tokenising between two chunks and
leaves nothing behind.

A stretch of more than 256 K characters that GPT-2's pre-tokenizer cannot split
(one "word": a corpus without whitespace, digits or punctuation) is cut every
256 K characters (``MAX_WORD_CHARS``), so tokenising shows progress and can stop
within a second; its tokens may differ from ``tokenizer.encode`` near those cuts.

Documents are separated by the tokenizer's end-of-text token when it has one
(gpt2: ``<|endoftext|>`` = 50256) and by a blank line otherwise (char).

Windows and batches over the tokens are ``data.windows``.
"""

from __future__ import annotations

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

from gptmini import tempfiles
from gptmini.data.token_file import TokenFileWriter, cache_write_error, check_token_file
from gptmini.errors import ConfigError, CorpusError
from gptmini.stopping import check_stop
from gptmini.text.corpus import DOC_SEPARATOR, Corpus, cache_root
from gptmini.text.tokenizer import DEFAULT_CHUNK_CHARS, EOT_TEXT, Tokenizer

if TYPE_CHECKING:
    import torch

MAX_WORD_CHARS = DEFAULT_CHUNK_CHARS // 4  # a "word" GPT-2 cannot split is cut this often (~0.25 s of BPE each)
CACHE_FORMAT = 2  # 2: a footer with the count and checksum of the ids (data.token_file)
ProgressFn = Callable[[int, int], None]
WarnFn = Callable[[str], None]
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
        warn: WarnFn | None = None,
    ) -> "TokenData":
        """Tokenise ``corpus`` into the cache (or reuse the cached file) and memory-map it.

        ``progress(done_bytes, total_bytes)`` follows the corpus bytes read; ``warn(message)`` is told when
        a damaged cache file is tokenised again.
        """
        folder = Path(cache_dir) if cache_dir is not None else tokens_cache_dir()
        path = folder / f"{cache_key(corpus, tokenizer)}.{tokenizer.dtype.name}.bin"
        n_tokens, problem = check_token_file(path, tokenizer.dtype)
        if problem is not None and warn is not None:
            warn(f"the token cache file {path} is damaged ({problem}); tokenising {corpus.name} again")
        from_cache = n_tokens is not None
        if not from_cache:
            n_tokens = _write_tokens(corpus, tokenizer, path, progress)
        elif progress is not None:
            progress(corpus.n_bytes, corpus.n_bytes)
        tokens = np.memmap(path, dtype=tokenizer.dtype, mode="r", shape=(n_tokens,))
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

    def warn(self, message: str) -> None:
        from gptmini.events import Warning

        self.emit(Warning(message=message, step=0))


def tokenize_corpus(
    corpus: Corpus, tokenizer: str | Tokenizer, *, val_fraction: float = 0.1, progress: ProgressFn | None = None,
    warn: WarnFn | None = None,
) -> tuple[Tokenizer, TokenData]:
    """The tokenizer for ``corpus`` and its cached token data.

    ``tokenizer`` is a name (a char vocabulary is then read from the corpus) or a tokenizer already
    built (a resumed run's). Used by the engine before a run and by ``gptmini prepare``; it never
    imports torch.
    """
    from gptmini.text.tokenizer import build_tokenizer

    if isinstance(tokenizer, str):
        tokenizer = build_tokenizer(tokenizer, corpus.iter_text() if tokenizer == "char" else None)
    return tokenizer, TokenData.build(corpus, tokenizer, val_fraction=val_fraction, progress=progress, warn=warn)


def split_point(n_tokens: int, val_fraction: float) -> int:
    """Number of train tokens: the first ``1 - val_fraction`` of the tokens."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    return int(n_tokens * (1 - val_fraction))


def _write_tokens(corpus: Corpus, tokenizer: Tokenizer, path: Path, progress: ProgressFn | None) -> int:
    """Stream the corpus through the tokenizer into ``path`` (a temporary file renamed into place); the
    number of tokens. Checks for a stop request between two chunks."""
    total = corpus.n_bytes
    read = 0

    def blocks() -> Iterator[str]:
        nonlocal read
        for text, n_bytes in corpus.iter_blocks(document_separator(tokenizer)):
            check_stop()
            yield text
            read += n_bytes

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tempfiles.in_progress(tmp):
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:
                writer = TokenFileWriter(out, tokenizer.dtype)
                for arr in tokenizer.encode_stream(blocks(), max_piece_chars=MAX_WORD_CHARS):
                    check_stop()
                    writer.write(arr)
                    if progress is not None:
                        progress(min(read, total), total)
                if writer.n_tokens == 0:
                    raise CorpusError(f"the corpus {corpus.name!r} produced no tokens")
                writer.finish()
            os.replace(tmp, path)
    except OSError as e:
        raise cache_write_error(e, path.parent, total * tokenizer.dtype.itemsize) from None
    if progress is not None:
        progress(total, total)
    return writer.n_tokens


# -- windows and batches -------------------------------------------------------------

"""Token cache, train/val split and batching.

``TokenData.build`` tokenises a corpus once, streaming it through the tokenizer
into a flat raw file of uint16/uint32 ids in the cache folder (named by the
corpus fingerprint and the tokenizer description), then memory-maps it. A second
run with the same text and tokenizer opens the file instantly.

Documents are separated by the tokenizer's end-of-text token when it has one
(gpt2: ``<|endoftext|>`` = 50256) and by a blank line otherwise (char).

``Batches`` cuts the train split into windows of ``context + 1`` tokens
(``x = w[:-1]``, ``y = w[1:]``), shuffles them per epoch from ``(seed, epoch)``,
shards them across ranks and yields int64 tensors of shape (batch, context).
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

from gptmini.corpus import DOC_SEPARATOR, Corpus, cache_root
from gptmini.errors import ConfigError, CorpusError
from gptmini.tokenizer import EOT_TEXT, Tokenizer

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
    from gptmini.tokenizer import build_tokenizer

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


def window_starts(n_tokens: int, context_length: int, stride: int) -> np.ndarray:
    """Start offsets ``0, stride, 2*stride, ...`` of every full ``context + 1`` window."""
    return np.arange(0, max(n_tokens - context_length, 0), stride, dtype=np.int64)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
    return int(value)


def check_fits(token_data: TokenData, context_length: int, batch_size: int = 1, world_size: int = 1) -> None:
    """Raise CorpusError unless both splits hold a window and the train split a full batch per rank."""
    need = context_length + 1
    n_train, n_val = token_data.n_train, token_data.n_val
    has_val = token_data.val_fraction > 0
    shortest = min(n_train, n_val) if has_val else n_train
    if shortest < need:
        hint = f"use --context {shortest - 1} or less, or more text" if shortest >= 2 else "use more text"
        where = "in each" if has_val else "in it"
        raise CorpusError(
            f"the corpus is too short: train split has {n_train} tokens, val split {n_val}; "
            f"context {context_length} needs at least {need} {where}; {hint}"
        )
    _check_batch(len(window_starts(n_train, context_length, context_length)), context_length, batch_size, world_size)


def _check_batch(n_windows: int, context_length: int, batch_size: int, world_size: int) -> None:
    per_rank = n_windows // world_size
    if per_rank >= batch_size:
        return
    ranks = f" ({per_rank} for each of {world_size} processes)" if world_size > 1 else ""
    if per_rank == 0:
        hint = "use fewer processes, a smaller --context, or more text"
    else:
        hint = f"use --batch-size {per_rank} or less, a smaller --context, or more text"
    raise CorpusError(
        f"the train split has only {n_windows} windows of {context_length} tokens{ranks}, "
        f"but batch size {batch_size} needs at least {batch_size} per process; {hint}"
    )


def _gather(tokens: np.ndarray, starts: np.ndarray, context_length: int) -> Batch:
    """x, y int64 tensors for windows starting at ``starts`` (one fancy-index, no per-token loop)."""
    import torch

    rows = starts[:, None] + np.arange(context_length + 1, dtype=np.int64)
    block = torch.from_numpy(np.asarray(tokens)[rows].astype(np.int64))
    return block[:, :-1].contiguous(), block[:, 1:].contiguous()


class Batches:
    """Shuffled, rank-sharded training batches over a 1-D token array.

    Each epoch permutes all windows with ``np.random.default_rng([seed, epoch])``
    (the same on every rank), truncates to a multiple of ``world_size`` and gives
    rank ``r`` the windows ``perm[r::world_size]``. Incomplete batches are dropped.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        context_length: int,
        batch_size: int,
        *,
        stride: int | None = None,
        seed: int = 1337,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ):
        self.tokens = tokens
        self.context_length = _positive_int("context_length", context_length)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.stride = _positive_int("stride", stride if stride is not None else context_length)
        self.world_size = _positive_int("world_size", world_size)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ConfigError(f"rank must be in 0..{world_size - 1}, got {rank!r}")
        self.rank, self.seed, self.shuffle = rank, int(seed), shuffle
        self.starts = window_starts(len(tokens), self.context_length, self.stride)
        if self.n_windows == 0:
            raise CorpusError(
                f"the token split has {len(tokens)} tokens; context {context_length} needs at least "
                f"{context_length + 1}; use --context {max(len(tokens) - 1, 1)} or less, or more text"
            )
        _check_batch(self.n_windows, self.context_length, self.batch_size, self.world_size)

    @property
    def n_windows(self) -> int:
        return int(self.starts.shape[0])

    @property
    def windows_per_rank(self) -> int:
        return self.n_windows // self.world_size

    @property
    def batches_per_epoch(self) -> int:
        return self.windows_per_rank // self.batch_size

    def __len__(self) -> int:
        return self.batches_per_epoch

    def epoch_windows(self, epoch: int) -> np.ndarray:
        """This rank's window indices for ``epoch``, in batch order."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, int(epoch)]).permutation(self.n_windows)
        else:
            order = np.arange(self.n_windows)
        order = order[: self.windows_per_rank * self.world_size]
        return order[self.rank :: self.world_size]

    def epoch_batches(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """Yield ``(x, y)`` for batches ``start_batch .. batches_per_epoch - 1`` of ``epoch``."""
        if isinstance(start_batch, bool) or not isinstance(start_batch, int) or start_batch < 0:
            raise ConfigError(f"start_batch must be a whole number >= 0, got {start_batch!r}")
        mine = self.epoch_windows(epoch)
        b = self.batch_size
        for i in range(start_batch, self.batches_per_epoch):
            yield _gather(self.tokens, self.starts[mine[i * b : (i + 1) * b]], self.context_length)


def eval_batches(tokens: np.ndarray, context_length: int, batch_size: int, max_batches: int) -> list[Batch]:
    """Fixed validation batches: non-overlapping windows, at most ``max_batches`` batches.

    When the split holds more windows than needed, evenly spaced ones are taken so
    the estimate covers the whole split. The last batch may be smaller.
    """
    context_length = _positive_int("context_length", context_length)
    batch_size = _positive_int("batch_size", batch_size)
    max_batches = _positive_int("max_batches", max_batches)
    starts = window_starts(len(tokens), context_length, context_length)
    if starts.size == 0:
        raise CorpusError(
            f"the validation split has {len(tokens)} tokens; context {context_length} needs at least "
            f"{context_length + 1}; use --context {max(len(tokens) - 1, 1)} or less, or more text"
        )
    wanted = batch_size * max_batches
    if starts.size > wanted:
        starts = starts[np.linspace(0, starts.size - 1, wanted).round().astype(np.int64)]
    return [
        _gather(tokens, starts[i : i + batch_size], context_length) for i in range(0, starts.size, batch_size)
    ]

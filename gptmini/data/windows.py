"""Windows of a flat token array and the batches cut from them.

``Batches`` cuts the train split into windows of ``context + 1`` tokens
(``x = w[:-1]``, ``y = w[1:]``), shuffles them per epoch from ``(seed, epoch)``,
shards them across ranks and yields int64 tensors of shape (batch, context).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from gptmini.data.tokens import TokenData
from gptmini.errors import ConfigError, CorpusError

if TYPE_CHECKING:
    import torch

Batch = tuple["torch.Tensor", "torch.Tensor"]  # torch is imported when batches are made



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

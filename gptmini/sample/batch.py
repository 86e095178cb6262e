"""Batched generation: continuations of many prompts at once through one KV cache (``gptmini respond``).

Prompts of different lengths are left-padded to the longest. An attention mask keeps the padded columns out
of every real token's view, and each row counts positions from 0 at its first real token, so a row is
generated as if it were alone: the tokens :class:`~gptmini.sample.sampler.Sampler` gives for that prompt
(up to float rounding in the batched matmuls).

* Stopping: a row ends at its end marker (a sequence of ids: end-of-text, or a blank line for the char
  tokenizer; it is not part of the result) or after ``max_new_tokens``. A finished row leaves the batch
  (its cache row is dropped, and columns no row still uses with it), so the others go on without it and
  the batch ends when its last row does.
* Context: the Sampler's "exact crop" (see :mod:`gptmini.sample.sampler`). When the cache is full, every
  row still going is pre-filled again from its last ``context_length`` tokens.
* Sampling: every row draws from its own generator with its own seed, so an answer does not depend on the
  batch it lands in: a row with seed ``s`` draws what ``Sampler`` with seed ``s`` draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from gptmini.errors import SamplingError
from gptmini.sample.sampler import filter_logits, make_generator
from gptmini.sample.settings import SamplingSettings

Progress = Callable[[int, int], None]
"""Called after every step with (tokens generated in it, rows that finished in it)."""


@dataclass(frozen=True)
class Generated:
    """One prompt's continuation."""

    ids: list[int]  # the new tokens, without the end marker
    ended: bool  # it reached the end marker (False: it ran into max_new_tokens)


def generate_many(model: Any, prompts: Sequence[Sequence[int]], settings: SamplingSettings, *,
                  end: Sequence[int] = (), batch_size: int = 8, progress: Progress | None = None) -> list[Generated]:
    """Every prompt's continuation, ``batch_size`` prompts at a time; results in the prompts' order.

    The longest prompts go first (batches of similar lengths pad least, and the biggest batch runs first, so
    a lack of memory shows at once). With a seed, prompt ``i`` samples with ``seed + i`` (as ``gptmini sample
    --num-samples`` numbers its samples), whichever batch it is in.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SamplingError(f"batch size must be a whole number >= 1, got {batch_size!r}")
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out: list[Generated | None] = [None] * len(prompts)
    for at in range(0, len(order), batch_size):
        chunk = order[at : at + batch_size]
        seeds = None if settings.seed is None else [settings.seed + i for i in chunk]
        done = generate_batch(model, [prompts[i] for i in chunk], settings, end=end, seeds=seeds, progress=progress)
        for i, generated in zip(chunk, done):
            out[i] = generated
    return [g for g in out if g is not None]


def generate_batch(model: Any, prompts: Sequence[Sequence[int]], settings: SamplingSettings, *,
                   end: Sequence[int] = (), seeds: Sequence[int | None] | None = None,
                   progress: Progress | None = None) -> list[Generated]:
    """The continuations of ``prompts`` (token ids, each cropped to its last ``context_length``), generated
    together. ``seeds``: one per prompt (sampling only; ``None`` draws one from the OS)."""
    vocab = model.config.vocab_size
    settings.validate(vocab)
    rows = [[int(t) for t in p] for p in prompts]
    for p in rows:
        if not p:
            raise SamplingError("a prompt has no tokens")
        bad = [t for t in p if not 0 <= t < vocab]
        if bad:
            raise SamplingError(f"token id {bad[0]} is outside the vocabulary (0..{vocab - 1})")
    if seeds is not None and len(seeds) != len(rows):
        raise SamplingError(f"{len(seeds)} seeds for {len(rows)} prompts")
    if not rows:
        return []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return _BatchRun(model, rows, settings, list(end), seeds, progress).run()
    finally:
        model.train(was_training)


class _BatchRun:
    """One batch from its pre-fill to its last row's end. Row ``j`` of the tensors is prompt ``rows[j]``."""

    def __init__(self, model: Any, prompts: list[list[int]], settings: SamplingSettings, end: list[int],
                 seeds: Sequence[int | None] | None, progress: Progress | None) -> None:
        self.model = model
        self.ctx = model.config.context_length
        self.device = next(model.parameters()).device
        self.settings = settings
        self.end = end
        self.progress = progress
        self.seqs = [list(p) for p in prompts]  # prompt + generated, per prompt
        self.new: list[list[int]] = [[] for _ in prompts]  # generated, per prompt
        self.ended = [False] * len(prompts)
        self.rows = list(range(len(prompts)))  # the prompts still going, in tensor-row order
        self.gens = [] if settings.is_greedy else \
            [make_generator(None if seeds is None else seeds[i], self.device) for i in self.rows]
        self.cache = model.new_cache(len(prompts))
        self.valid = torch.zeros((len(prompts), self.ctx), dtype=torch.bool, device=self.device)  # real columns
        self.next_pos = torch.zeros(len(prompts), dtype=torch.long, device=self.device)  # each row's next position

    def run(self) -> list[Generated]:
        logits = self._prefill()
        while True:
            tokens = self._pick(logits)
            keep = [j for j, (row, tok) in enumerate(zip(self.rows, tokens)) if not self._add(row, tok)]
            if self.progress is not None:
                self.progress(len(tokens), len(tokens) - len(keep))
            if not keep:
                break
            if len(keep) < len(self.rows):
                self._keep(keep)
            tokens = [tokens[j] for j in keep]
            logits = self._step(tokens) if self.cache.pos < self.ctx else self._prefill()
        return [Generated(new[: len(new) - len(self.end)] if ended else new, ended)
                for new, ended in zip(self.new, self.ended)]

    def _add(self, row: int, tok: int) -> bool:
        """Append a prompt's new token; True when the prompt is finished."""
        new = self.new[row]
        new.append(tok)
        self.seqs[row].append(tok)
        if self.end and new[-len(self.end):] == self.end:
            self.ended[row] = True
            return True
        return len(new) >= self.settings.max_new_tokens

    def _pick(self, logits: torch.Tensor) -> list[int]:
        """One token per row from logits ``(rows, vocab)``, each row with its own generator."""
        if self.settings.is_greedy:
            return logits.argmax(dim=-1).tolist()
        probs = filter_logits(logits, self.settings)
        return [int(torch.multinomial(probs[j], 1, generator=gen)) for j, gen in enumerate(self.gens)]

    def _prefill(self) -> torch.Tensor:
        """Fill the cache from each row's last ``context_length`` tokens, left-padded; the last logits."""
        windows = [self.seqs[row][-self.ctx :] for row in self.rows]
        width, dev = max(len(w) for w in windows), self.device
        idx = torch.zeros((len(windows), width), dtype=torch.long)  # padding id 0: masked out everywhere
        for j, w in enumerate(windows):
            idx[j, width - len(w):] = torch.tensor(w)
        pads = torch.tensor([width - len(w) for w in windows], device=dev).unsqueeze(1)
        cols = torch.arange(width, device=dev)
        self.valid.zero_()
        self.valid[:, :width] = cols >= pads
        causal = cols.unsqueeze(0) <= cols.unsqueeze(1)  # query i sees keys <= i
        # Real keys only; a padding query sees itself (a row of nothing but -inf would be NaN).
        mask = (causal & self.valid[:, None, :width]) | torch.eye(width, dtype=torch.bool, device=dev)
        self.cache.reset()
        logits, _ = self.model(idx.to(dev), cache=self.cache, last_only=True,
                               positions=(cols - pads).clamp(min=0), attn_mask=mask.unsqueeze(1))
        self.next_pos = torch.tensor([len(w) for w in windows], device=dev)
        return logits[:, -1]

    def _step(self, tokens: list[int]) -> torch.Tensor:
        """One new token per row, appended to the cache; the next logits."""
        col = self.cache.pos
        self.valid[:, col] = True
        idx = torch.tensor(tokens, dtype=torch.long, device=self.device).unsqueeze(1)
        logits, _ = self.model(idx, cache=self.cache, last_only=True, positions=self.next_pos.unsqueeze(1),
                               attn_mask=self.valid[:, None, None, : col + 1])
        self.next_pos += 1
        return logits[:, -1]

    def _keep(self, keep: list[int]) -> None:
        """Only the rows ``keep`` go on: a smaller cache without the others' rows and without the columns
        that are padding in every row kept (their keys are where they were; positions are in them)."""
        k = torch.tensor(keep, device=self.device)
        pos, valid = self.cache.pos, self.valid[k]
        first = int(valid[:, :pos].any(dim=0).int().argmax())  # the first column a kept row uses
        cache = self.model.new_cache(len(keep))
        for layer in range(len(cache.k)):
            cache.k[layer][:, :, : pos - first] = self.cache.k[layer][k, :, first:pos]
            cache.v[layer][:, :, : pos - first] = self.cache.v[layer][k, :, first:pos]
        cache.pos = pos - first
        self.cache = cache
        self.valid = torch.zeros_like(valid)
        self.valid[:, : pos - first] = valid[:, first:pos]
        self.next_pos = self.next_pos[k]
        self.rows = [self.rows[j] for j in keep]
        if self.gens:
            self.gens = [self.gens[j] for j in keep]

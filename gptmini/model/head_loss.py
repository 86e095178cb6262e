"""The output layer and its cross-entropy in one step, a block of rows at a time (the CPU's training loss).

At the book's shapes the 50,257-way output layer dominates a step: ``x @ W.T`` gives a (tokens x vocabulary)
logits tensor, ``F.cross_entropy`` makes an fp32 copy, its log-softmax another, and the backward a zeroed
gradient, a softmax gradient and (under bf16 autocast) a cast back: each a full pass over hundreds of MB, and
each a fresh allocation. ``linear_cross_entropy`` computes the same loss and gradients without them:

* rows whose target is ignored (a fine-tuning batch's padding) are dropped before the head, so their logits are
  never computed;
* the logits are computed once, in the compute dtype (bf16 under autocast, else fp32), and then, a block of
  rows at a time, turned in fp32 into the block's loss and, in place, into their own gradient
  ``softmax - one_hot`` (all that the gradient of a mean cross-entropy needs);
* the backward is the two matmuls over that gradient, scaled by ``grad / n_targets``: nothing is recomputed,
  and the only full-size tensor is the logits' gradient in the compute dtype.

A padded head's columns ``vocab..`` get ``-inf`` before the softmax: probability and gradient exactly 0, the
loss over the tokenizer's vocabulary only. A LoRA adapter on the head adds its low-rank term to the logits.
"""

from __future__ import annotations

import torch

from gptmini.data.batch import IGNORE_INDEX

# Elements of one block of rows (32 rows of GPT-2's padded vocabulary): its fp32 copy (6.4 MB) stays in the
# CPU's caches between the passes over it. 16 to 64 rows measured alike at 256 and 768 wide; a small
# vocabulary gets more rows per block (a char model's whole batch is one block). bench/README.md, issue 30.
BLOCK_ELEMENTS = 32 * 50304


def _block_losses(logits: torch.Tensor, targets: torch.Tensor, vocab: int, grad: bool, chunk: int) -> torch.Tensor:
    """The summed loss of the rows (an fp32 scalar), from ``logits`` (rows x padded vocabulary, the compute
    dtype). With ``grad`` each block of rows of ``logits`` is overwritten with its gradient ``softmax - one_hot``.

    Per block, in fp32: the row maximum ``m``, the softmax ``p`` (one exp per element: measured 2x faster
    than a log-softmax on this CPU), and the log-sum-exp read back from the largest probability,
    ``lse = m - log(max p)`` (``max p >= 1 / vocabulary``, so the log is exact to fp32 rounding); the loss of a
    row is ``lse - logit[target]``."""
    n = logits.shape[0]
    total = torch.zeros((), dtype=torch.float32, device=logits.device)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        t = targets[rows].unsqueeze(1)
        block = logits[rows].float()  # fp32 (the same memory when the compute dtype is fp32)
        block[:, vocab:] = float("-inf")
        picked = block.gather(1, t).squeeze(1)
        top = block.amax(dim=-1)
        probs = torch.softmax(block, dim=-1)
        total += (top - probs.amax(dim=-1).log() - picked).sum()
        if grad:
            probs.scatter_add_(1, t, torch.full_like(t, -1.0, dtype=probs.dtype))
            logits[rows].copy_(probs)
    return total


class _LinearCrossEntropy(torch.autograd.Function):
    """The mean cross-entropy of ``x @ weight.T (+ low_x @ low_w.T)`` over rows whose every target counts; the
    backward's matmuls use the gradient of the logits that the forward left in their place."""

    @staticmethod
    def forward(ctx, x, weight, low_x, low_w, targets, vocab, dtype, chunk):
        xc, wc = x.to(dtype), weight.to(dtype)
        grad_logits = torch.mm(xc, wc.t())
        lx = lw = None
        if low_x is not None:
            lx, lw = low_x.to(dtype), low_w.to(dtype)
            grad_logits.addmm_(lx, lw.t())
        total = _block_losses(grad_logits, targets, vocab, True, chunk)
        ctx.save_for_backward(xc, wc, lx, lw, grad_logits)
        ctx.dtypes = [t.dtype if t is not None else None for t in (x, weight, low_x, low_w)]
        return total / targets.numel()

    @staticmethod
    def backward(ctx, grad_loss):
        xc, wc, lx, lw, grad_logits = ctx.saved_tensors
        scale = grad_loss.float() / grad_logits.shape[0]
        need = ctx.needs_input_grad

        def of_rows(i: int, other: torch.Tensor) -> torch.Tensor | None:  # x, low_x
            return torch.mm(grad_logits, other).to(ctx.dtypes[i]).mul_(scale) if need[i] else None

        def of_weight(i: int, rows: torch.Tensor) -> torch.Tensor | None:  # weight, low_w
            return torch.mm(grad_logits.t(), rows).to(ctx.dtypes[i]).mul_(scale) if need[i] else None

        return of_rows(0, wc), of_weight(1, xc), of_rows(2, lw), of_weight(3, lx), None, None, None, None


def compute_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype ``F.linear`` would multiply in here: autocast's where it is on, else the weight's."""
    device = x.device.type
    if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return weight.dtype


def linear_cross_entropy(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab: int,
                         low_rank: tuple[torch.Tensor, torch.Tensor] | None = None,
                         chunk: int | None = None) -> torch.Tensor:
    """``F.cross_entropy((x @ weight.T + low_x @ low_w.T)[..., :vocab], targets, ignore_index=IGNORE_INDEX)``
    over the rows of ``x`` (``(..., d)``) and ``targets`` (``(...)``), ``chunk`` rows at a time (default:
    ``BLOCK_ELEMENTS`` logits). ``low_rank = (low_x, low_w)``, shaped ``(..., r)`` and ``(vocabulary, r)``,
    adds a LoRA adapter's term to the logits. Rows whose target is ignored (a fine-tuning batch's padding) are
    left out before the head: their logits are never computed."""
    dtype = compute_dtype(x, weight)
    chunk = chunk or max(1, BLOCK_ELEMENTS // weight.shape[0])
    x, t = x.reshape(-1, x.shape[-1]), targets.reshape(-1)
    low_x, low_w = low_rank if low_rank is not None else (None, None)
    if low_x is not None:
        low_x = low_x.reshape(-1, low_x.shape[-1])
    keep = t != IGNORE_INDEX
    if not bool(keep.all()):
        x, t = x[keep], t[keep]
        low_x = low_x[keep] if low_x is not None else None
    inputs = [v for v in (x, weight, low_x, low_w) if v is not None]
    if torch.is_grad_enabled() and any(v.requires_grad for v in inputs):
        return _LinearCrossEntropy.apply(x, weight, low_x, low_w, t, vocab, dtype, chunk)
    logits = torch.mm(x.to(dtype), weight.to(dtype).t())
    if low_x is not None:
        logits.addmm_(low_x.to(dtype), low_w.to(dtype).t())
    return _block_losses(logits, t, vocab, False, chunk) / t.numel()

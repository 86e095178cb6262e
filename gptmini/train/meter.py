"""Step reporting: the training loop's losses fetched without stalling it, and the throughput readout.

``StepReporter`` takes each optimizer step's loss and gradient norm as device tensors and turns them
into ``Step`` events: on a GPU every ``log_interval`` steps the values are copied to pinned host memory
asynchronously and read once the copy has landed, so the loop never waits for the device just to
report; on the CPU there is nothing to wait for. ``Throughput`` is the tok/s, MFU and ETA readout.
"""

from __future__ import annotations

import collections
import math
import time
from typing import Callable

import torch

from gptmini import events as ev
from gptmini.train.plan import RunPlan


class NonFiniteLoss(Exception):
    """A step produced a NaN or infinite loss (the run stops without saving those weights)."""

    def __init__(self, step: int, value: float):
        super().__init__(step, value)
        self.step = step
        self.value = value


class Throughput:
    """Tokens per second over the recent steps, with time spent not training left out.

    Evaluations, saves and pauses are ``exclude``-d. The first group of steps (compilation,
    allocator warm-up) is dropped as soon as a second one exists, and so is any group that took more
    than twice the typical time per token (a recompilation after an evaluation, a page-in): tok/s, MFU
    and ETA show the steady state, which is then the wall clock's tokens over time for the same steps.
    """

    def __init__(self, flops_per_token: float, peak_flops: float | None, window: int = 20,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self._clock = clock
        self._last = clock()
        self._excluded = 0.0
        self._spans: collections.deque[tuple[int, float, int]] = collections.deque(maxlen=window)
        self._first: tuple[int, float, int] | None = None
        self.rate: float | None = None
        self.seconds_per_step: float | None = None

    def restart(self) -> None:
        """Measure from now (the loop starts)."""
        self._last, self._excluded = self._clock(), 0.0

    def exclude(self, seconds: float) -> None:
        self._excluded += seconds

    def add(self, tokens: int, steps: int = 1) -> float:
        """``tokens`` were trained in ``steps`` optimizer steps since the last call; returns the tok/s readout."""
        now = self._clock()
        span = (max(tokens, 1), max(now - self._last - self._excluded, 1e-9), steps)
        self._last, self._excluded = now, 0.0
        self._spans.append(span)
        if self._first is None:
            self._first = span
        elif len(self._spans) > 1 and self._spans[0] is self._first:
            self._spans.popleft()
        typical = sorted(d / t for t, d, _ in self._spans)[len(self._spans) // 2]
        steady = [(t, d, n) for t, d, n in self._spans if d / t <= 2 * typical]
        seconds = sum(d for _, d, _ in steady)
        self.rate = sum(t for t, _, _ in steady) / seconds
        self.seconds_per_step = seconds / sum(n for _, _, n in steady)
        return self.rate

    def eta(self, steps_left: int) -> float | None:
        """Seconds to train ``steps_left`` more steps at the steady pace (steps may hold different numbers of
        target tokens: a fine-tuning batch is as long as its longest example)."""
        return steps_left * self.seconds_per_step if self.seconds_per_step else None

    @property
    def mfu(self) -> float | None:
        return self.flops_per_token * self.rate / self.peak_flops if self.peak_flops and self.rate else None


class StepReporter:
    """Collects each step's (loss, grad norm) on the device and emits ``Step`` events in order, counting the
    target tokens trained on (``tokens_seen``: under torchrun, summed over the processes with the losses)."""

    def __init__(self, emit: Callable[[ev.Event], None], plan: RunPlan, *, device: torch.device, world_size: int,
                 throughput: Throughput) -> None:
        self._emit = emit
        self.plan = plan
        self.device = device
        self.world_size = world_size
        self.throughput = throughput
        self._pending: list[tuple[tuple, torch.Tensor, torch.Tensor]] = []
        self._inflight: list[tuple[list[tuple], torch.Tensor, torch.cuda.Event | None]] = []
        self._smooth: float | None = None
        self.last_loss: float | None = None
        self.tokens_seen = 0  # target tokens of every step reported so far

    def add(self, step: int, epoch: int, batch: int, lr: float, loss: torch.Tensor, grad_norm: torch.Tensor,
            n_targets: int) -> None:
        """Record one optimizer step (1-based ``step``, ``epoch``, ``batch``) that trained on ``n_targets`` target
        tokens in this process; emits what has arrived."""
        self._pending.append(((step, epoch, batch, lr), loss, grad_norm, n_targets))
        if len(self._pending) >= self.plan.log_interval:
            self._launch()
        self.flush(wait=False)

    def flush(self, wait: bool) -> None:
        """Emit every step whose values have reached the host (``wait``: all of them, now)."""
        if wait:
            self._launch()
        while self._inflight:
            metas, host, done = self._inflight[0]
            if done is not None:
                if wait:
                    done.synchronize()
                elif not done.query():
                    return
            self._inflight.pop(0)
            self._report(metas, host.tolist())

    def discard(self) -> None:
        """Forget steps not reported yet (after an out-of-memory error: free what they hold)."""
        self._pending.clear()
        self._inflight.clear()

    def _launch(self) -> None:
        if not self._pending:
            return
        metas = [p[0] for p in self._pending]
        vals = torch.stack([torch.stack([p[1].float(), p[2].float()]) for p in self._pending])
        counts = torch.tensor([p[3] for p in self._pending], dtype=torch.float64)
        self._pending = []
        if self.world_size > 1:
            import torch.distributed as dist

            counts = counts.to(vals.device)
            dist.all_reduce(vals, op=dist.ReduceOp.SUM)
            dist.all_reduce(counts, op=dist.ReduceOp.SUM)  # every process's targets count
            vals[:, 0] /= self.world_size
        vals = torch.cat([vals.double(), counts.to(vals.device).unsqueeze(1)], dim=1)
        if self.device.type == "cuda":
            host = torch.empty(vals.shape, dtype=vals.dtype, pin_memory=True)
            host.copy_(vals, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self._inflight.append((metas, host, done))
        else:
            self._inflight.append((metas, vals.cpu(), None))

    def _report(self, metas: list[tuple], values: list[list[float]]) -> None:
        plan = self.plan
        rate = self.throughput.add(int(sum(v[2] for v in values)), len(metas))
        mfu = self.throughput.mfu
        mem = torch.cuda.max_memory_allocated(self.device) / 1e9 if self.device.type == "cuda" else None
        for (step, epoch, batch, lr), (loss, gnorm, n_targets) in zip(metas, values):
            if not math.isfinite(loss):
                raise NonFiniteLoss(step, loss)
            self._smooth = loss if self._smooth is None else 0.9 * self._smooth + 0.1 * loss
            self.last_loss = loss
            self.tokens_seen += int(n_targets)
            self._emit(ev.Step(step=step, epoch=epoch, batch=batch, batches_per_epoch=plan.steps_per_epoch,
                               total_steps=plan.total_steps, tokens_seen=self.tokens_seen,
                               loss=loss, loss_smooth=self._smooth, lr=lr, grad_norm=gnorm, tok_per_s=rate,
                               eta_s=self.throughput.eta(plan.total_steps - step), mfu=mfu, gpu_mem_gb=mem))

"""Before the first step: will the run fit in memory, and how long will one step take?

Both are estimates from the model's shape, the batch and the precision. The memory estimate counts
only what training certainly holds (weights, gradients and AdamW's two moments in fp32, the logits and
their gradient, a lower bound of the activations kept for the backward pass), so a run it refuses
would certainly not fit. The step time comes from the model's FLOPs and a short matmul probe of the
device, so a step of many minutes is announced instead of looking like a hang.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch

from gptmini.model.config import ModelConfig

SLOW_STEP_S = 60.0  # warn when one optimizer step is estimated to take longer


@dataclass(frozen=True)
class Estimate:
    n_params: int
    flops_per_step: float
    memory_bytes: int


def estimate_run(cfg: ModelConfig, batch_size: int, grad_accum: int, activation_bytes: int) -> Estimate:
    """What one optimizer step of ``cfg`` at ``batch_size`` x ``context_length`` needs (no memory allocated)."""
    from gptmini.model.gpt import GPT

    with torch.device("meta"):
        model = GPT(cfg)
    n_params = model.num_params()
    stored = sum(p.numel() for p in model.parameters())
    tokens = batch_size * cfg.context_length
    states = stored * 4 * 4  # fp32 weights, gradients, AdamW m and v
    logits = tokens * cfg.padded_vocab_size * 4 * 2  # fp32 logits and their gradient
    # per layer at least: the block's input, two LayerNorm outputs, q/k/v, the attention output, the
    # MLP's hidden layer before and after GELU (4 d each): 18 d values per token
    activations = cfg.n_layers * tokens * cfg.d_model * 18 * activation_bytes
    return Estimate(n_params=n_params, flops_per_step=float(model.flops_per_token()) * tokens * grad_accum,
                    memory_bytes=states + logits + activations)


def available_memory(device: torch.device) -> int | None:
    """Bytes the run may still use: free GPU memory, or the host's available memory (Linux)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def matmul_flops(device: torch.device, n: int = 384, repeats: int = 4) -> float:
    """FLOP/s of a float32 matmul on ``device`` with this process's threads (a ~0.1 s probe)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    (a @ b).sum().item()  # warm-up: the first call pays for dispatch and thread start
    t0 = time.perf_counter()
    for _ in range(repeats):
        c = a @ b
    c.sum().item()
    return 2 * n**3 * repeats / max(time.perf_counter() - t0, 1e-9)


def check_run_size(cfg: ModelConfig, *, batch_size: int, grad_accum: int, half_precision: bool,
                   device: torch.device) -> str | None:
    """Refuse (``ConfigError``, with the estimate) a run that cannot fit in memory; a warning when one
    optimizer step will take minutes, else None."""
    from gptmini.errors import ConfigError
    from gptmini.fmt import duration, human_bytes, human_count

    est = estimate_run(cfg, batch_size, grad_accum, 2 if half_precision else 4)
    free = available_memory(device)
    shape = f"{human_count(est.n_params, 1)} params at batch {batch_size} × context {cfg.context_length}"
    if free is not None and est.memory_bytes > free:
        raise ConfigError(
            f"this run needs at least {human_bytes(est.memory_bytes)} of memory ({shape}), but {device} has "
            f"{human_bytes(free)} free; lower --batch-size or --context, or pick a smaller model")
    if est.flops_per_step < 60e9:  # under a minute even at 1 GFLOP/s: no need to probe
        return None
    seconds = est.flops_per_step / matmul_flops(device)
    if seconds < SLOW_STEP_S:
        return None
    return (f"one optimizer step will take about {duration(seconds)} here ({shape}: "
            f"{est.flops_per_step:.1e} FLOPs); the first loss appears after it. Ctrl+C stops after the step, "
            f"twice stops at once")

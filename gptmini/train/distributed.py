"""torchrun support: which process this is, and the few collective calls the engine makes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 evaluates, samples, saves and writes the run folder."""
        return self.rank == 0


def init_distributed(device_option: str) -> Ranks:
    """Join the process group torchrun set up (``WORLD_SIZE`` > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and device_option in ("auto", "cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def any_rank(flag: bool, ranks: Ranks, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (so all ranks stop at the same step)."""
    if ranks.world_size == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def teardown_distributed(ranks: Ranks) -> None:
    if ranks.world_size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

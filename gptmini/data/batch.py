"""What every task's batches are made of: inputs, targets with a named ignore index, and a count of the
targets that are not ignored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100  # a target with this id counts for nothing: no loss, no gradient, not a token seen


@dataclass
class Batch:
    """One micro-batch: inputs ``x`` (batch, time), targets ``y`` of the same shape, and ``n_targets``, how
    many targets are not ``IGNORE_INDEX`` (counted on the host, before the batch goes to the device)."""

    x: torch.Tensor
    y: torch.Tensor
    n_targets: int

    def to(self, device: torch.device) -> Batch:
        if device.type == "cuda":  # pinned, so the copy overlaps the GPU's work
            return Batch(self.x.pin_memory().to(device, non_blocking=True),
                         self.y.pin_memory().to(device, non_blocking=True), self.n_targets)
        return Batch(self.x.to(device), self.y.to(device), self.n_targets)

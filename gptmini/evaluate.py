"""What the engine measures and shows between steps: the mean loss over fixed evaluation batches, and
the prompt of the greedy sample printed after each evaluation."""

from __future__ import annotations

from typing import Any

import torch

from gptmini.device import DeviceChoice
from gptmini.errors import GPTMiniError


@torch.no_grad()
def mean_loss(model: torch.nn.Module, batches: list, device: torch.device, precision: DeviceChoice) -> float:
    """The mean loss over fixed evaluation batches (call with the model in eval mode)."""
    total = 0.0
    for x, y in batches:
        with precision.autocast():
            _, loss = model(x.to(device), y.to(device))
        total += loss.item()
    return total / max(1, len(batches))


def pick_sample_prompt(asked: str | None, tokenizer: Any, val_text: str) -> tuple[str | None, str | None]:
    """The prompt of the sample after each evaluation, and a warning when ``--sample-prompt`` is unusable."""
    if asked:
        try:
            tokenizer.encode(asked)
        except GPTMiniError as exc:
            return None, f"--sample-prompt cannot be used: {exc}"
        return asked, None
    for prompt in ("Every effort moves you", "The ", "the "):
        try:
            tokenizer.encode(prompt)
        except GPTMiniError:
            continue
        return prompt, None
    return (val_text or None), None

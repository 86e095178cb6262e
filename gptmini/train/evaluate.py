"""What the engine measures and shows between steps: the mean loss over fixed evaluation batches, and
the prompt of the greedy sample printed after each evaluation."""

from __future__ import annotations

from typing import Any

import torch

from gptmini.errors import GPTMiniError
from gptmini.sample.sampler import Sampler, SamplingSettings
from gptmini.train.device import DeviceChoice


@torch.no_grad()
def mean_loss(model: torch.nn.Module, batches: list, device: torch.device, precision: DeviceChoice) -> float:
    """The mean loss over fixed evaluation batches (call with the model in eval mode)."""
    total = 0.0
    for x, y in batches:
        with precision.autocast():
            _, loss = model(x.to(device), y.to(device))
        total += loss.item()
    return total / max(1, len(batches))


def greedy_sample(model: torch.nn.Module, tokenizer: Any, prompt: str, max_new_tokens: int) -> tuple[str | None, str | None]:
    """The greedy continuation of ``prompt`` printed after an evaluation, or (None, why it was skipped).
    Leaves the model in train mode."""
    try:
        return Sampler(model, tokenizer).generate(
            prompt, SamplingSettings(strategy="greedy", max_new_tokens=max_new_tokens)), None
    except GPTMiniError as exc:
        return None, f"sample skipped: {exc}"
    finally:
        model.train()


RASCHKA_PROMPT = "Every effort moves you"  # the book's start context, for its corpus


def pick_sample_prompt(asked: str | None, tokenizer: Any, corpus: str, val_text: str) -> tuple[str | None, str | None]:
    """The prompt of the sample after each evaluation, and a warning when ``--sample-prompt`` is unusable.

    ``--sample-prompt`` if given; for the-verdict Raschka's "Every effort moves you"; otherwise the start of
    a line of the validation text (words of the corpus itself, not a prompt written for another book).
    """
    if asked:
        try:
            tokenizer.encode(asked)
        except GPTMiniError as exc:
            return None, f"--sample-prompt cannot be used: {exc}"
        return asked, None
    if corpus == "the-verdict":
        return RASCHKA_PROMPT, None
    return line_start(val_text) or "The ", None


def line_start(text: str, max_words: int = 3, max_chars: int = 24) -> str | None:
    """The first words of the first full line of ``text`` that starts with a letter (None: no such line)."""
    for line in text.split("\n")[1:]:  # the first piece may start mid-line
        line = line.strip()
        if line[:1].isalpha():
            words, out = line.split()[:max_words], ""
            for word in words:
                if len(out) + len(word) + 1 > max_chars and out:
                    break
                out = f"{out} {word}" if out else word
            return out
    return None

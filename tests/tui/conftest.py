"""Fixtures for the TUI tests: a tiny corpus and a tiny TrainConfig.

(``tests/conftest.py`` already pins torch to one thread and isolates the caches.)

Every app test drives a real (tiny) training run: 1 layer, d_model 32, 2 heads,
context 32, batch 4 on a ~30 KB generated text, so a step takes milliseconds.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

WORDS = (
    "the model learns to predict the next token from the tokens before it and every effort moves you "
    "closer to a lower loss while the optimizer follows the gradient down a long and winding valley"
).split()


def make_text(n_bytes: int = 30_000, seed: int = 7) -> str:
    rng = random.Random(seed)
    lines, size = [], 0
    while size < n_bytes:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(make_text(), encoding="utf-8")
    return path


@pytest.fixture
def tiny_config(corpus_file, tmp_path):
    from gptmini.train_config import TrainConfig

    def make(**overrides) -> TrainConfig:
        opts = dict(
            data=[str(corpus_file)],
            tokenizer="char",
            n_layers=1,
            d_model=32,
            n_heads=2,
            context=32,
            batch_size=4,
            max_steps=100_000,
            eval_interval=50,
            eval_batches=2,
            save_interval=100_000,
            sample_tokens=16,
            out=str(tmp_path / "run"),
            seed=1,
        )
        opts.update(overrides)
        return TrainConfig(**opts)

    return make

"""A CPU training run whose batches have one shape keeps freed memory for its next step (train/memory.py): after
the first steps, a step takes no fresh pages from the system; with malloc's own settings every step does."""

import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gptmini.data.instructions import ExampleBatches
from gptmini.data.windows import Batches
from gptmini.tasks.classify import TextBatches
from gptmini.tasks.pretrain import WindowBatches

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="malloc's settings are glibc's")

# Page faults of each of six training steps of a one-layer model with GPT-2's vocabulary (its logits, 4 x 128 x
# 50,304, are far above malloc's mmap threshold), the same batch every step.
PROBE = textwrap.dedent("""
    import resource, sys, torch
    from gptmini.model.config import ModelConfig
    from gptmini.model.gpt import GPT
    from gptmini.train.memory import keep_freed_memory

    kept = keep_freed_memory() if sys.argv[1] == "keep" else False
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=50257, context_length=128, n_layers=1, n_heads=2, d_model=32)).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    x, y = torch.randint(0, 50257, (4, 128)), torch.randint(0, 50257, (4, 128))
    faults = []
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, loss = m(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(kept, *faults)
""")


def step_faults(mode: str) -> tuple[str, list[int]]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=300, check=True)
    kept, *faults = out.stdout.split()
    return kept, [int(f) for f in faults]


def test_a_step_after_the_first_takes_no_fresh_pages_once_freed_memory_is_kept():
    kept, faults = step_faults("keep")
    plain_kept, plain = step_faults("plain")
    assert kept == "True" and plain_kept == "False"
    assert min(plain[3:]) > 10_000  # malloc's own settings: fresh pages every step (~44,000 measured)
    assert max(faults[3:]) < 1_000  # kept: the pages of the step before are reused (0-2 measured)


def test_only_batches_of_one_shape_ask_for_it():
    """Batches whose shape changes every step would grow the heap instead (train/memory.py's measurement)."""
    windows = WindowBatches(Batches(np.arange(200, dtype=np.uint16), context_length=8, batch_size=2))
    assert windows.same_shape and {b.x.shape for b in windows.epoch_batches(0)} == {(2, 8)}
    assert ExampleBatches([], 2, pad_id=0, mask_prompt=False, seed=0).same_shape is False
    assert TextBatches([], [], 2, pad_id=0, width=16, seed=0).same_shape
    assert not TextBatches([], [], 2, pad_id=0, width=None, seed=0).same_shape

"""Run under torchrun by test_ddp.py: train a few steps, then dump this rank's weights."""

import os
import sys

from safetensors.torch import save_file

from gptmini.train.engine import Trainer
from gptmini.train_config import TrainConfig

data, out, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = TrainConfig(data=[data], out=out, n_layers=1, n_heads=2, d_model=32, context=32, batch_size=batch,
                  max_steps=6, eval_interval=3, eval_batches=2, sample_tokens=4, device="cpu", seed=5,
                  warmup_steps=1, grad_accum=2,
                  # AdamW: Muon orthogonalises in bf16 where the CPU has native bf16, and bf16 rounding tells
                  # apart gradients that DDP and one process sum in a different order (equal to ~1e-4 only)
                  optimizer="adamw")
trainer = Trainer(cfg)
finished = trainer.run()
assert finished.reason == "completed", finished
rank = int(os.environ.get("RANK", "0"))
save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, os.path.join(out, f"rank{rank}.safetensors"))

"""The layout of a run folder on disk, in one place.

    run_dir/
      config.json, metrics.jsonl
      step-000500/  model.safetensors  optimizer.safetensors  manifest.json
      latest        (text: the folder name of the newest checkpoint)
      best          (text: the folder name of the best-by-val-loss checkpoint)
"""

from __future__ import annotations

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
POINTERS = ("latest", "best")
_PREFIX = "step-"


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:06d}"


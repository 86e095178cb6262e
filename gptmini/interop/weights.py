"""``gptmini export --format weights``: a checkpoint's model weights in one safetensors file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_file

from gptmini.ckpt.state import model_for_export
from gptmini.paths import check_output_file


def export_weights(path: str | Path, out_file: str | Path, *, force: bool = False) -> Path:
    """Write a checkpoint's model weights (vocab padding removed) to one safetensors file (an existing one only
    with ``force``)."""
    out = check_output_file(out_file, force=force, suffix=".safetensors")
    model = model_for_export(path)
    cfg = model.config
    tensors = dict(model.state)
    for key in ("wte.weight", "lm_head.weight"):
        if key in tensors:
            tensors[key] = tensors[key][: cfg.vocab_size].contiguous()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    metadata = {"model_config": json.dumps(cfg.to_dict()), "tokenizer": json.dumps(model.manifest.get("tokenizer")),
                "step": str(model.step), "format": "gptmini-weights"}
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out

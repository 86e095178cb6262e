"""Side-by-side variants of the CUDA training path (gpt2-124m, T=1024, batch 16), one process.

    python bench/gpu_variants.py --out DIR
Each variant is the real engine; only the named knob differs. "baseline" is the engine as it is
(the -inf bias in the LM-head matmul); "mask-pass" is the separate masked_fill it replaced.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch.nn.functional as F  # noqa: E402
from _machine import describe as describe_machine  # noqa: E402 - bench/_machine.py
from gpu_check import corpus_file, run_engine  # noqa: E402

from gptmini.model.gpt import GPT, CausalSelfAttention  # noqa: E402
from gptmini.train_config import TrainConfig  # noqa: E402

ORIGINAL_LOSS = GPT.loss_from_hidden


def _loss_nomask(self, x, targets):  # nanoGPT: padding columns take part in the softmax
    logits = self.head(x).float()
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def _loss_mask_pass(self, x, targets):  # the first version: a separate masked_fill over the fp32 logits
    logits = self.head(x).float()
    V, Vp = self.config.vocab_size, logits.shape[-1]
    logits = logits.masked_fill(torch.arange(Vp, device=logits.device) >= V, float("-inf"))
    return F.cross_entropy(logits.view(-1, Vp), targets.reshape(-1))


ORIGINAL_ATTN = CausalSelfAttention.forward


def _attn_cudnn(self, x, cache=None, layer=0):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if cache is not None:
        return ORIGINAL_ATTN(self, x, cache, layer)
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION], set_priority=True):
        return ORIGINAL_ATTN(self, x, cache, layer)


def variant(name: str):
    import torch._inductor.config as ic

    torch._dynamo.reset()  # compiled graphs are cached per code object: start each variant clean
    ic.coordinate_descent_tuning = name == "coord-descent"
    CausalSelfAttention.forward = _attn_cudnn if name == "cudnn-train" else ORIGINAL_ATTN
    GPT.loss_from_hidden = {"nomask": _loss_nomask, "mask-pass": _loss_mask_pass}.get(name, ORIGINAL_LOSS)
    return contextlib.nullcontext()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--steps", type=int, default=70)
    ap.add_argument("--variants", default="baseline,mask-pass,cudnn-train,baseline")
    args = ap.parse_args()
    print(f"machine: {describe_machine()}", flush=True)
    lines = [f"{torch.cuda.get_device_name()} torch {torch.__version__} {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = corpus_file(tmp, 24)
        for i, name in enumerate(args.variants.split(",")):
            cfg = TrainConfig(data=[str(data)], preset="gpt2-124m", tokenizer="gpt2", batch_size=16,
                              max_steps=args.steps, eval_interval=10_000, eval_batches=1, sample_tokens=4,
                              save_interval=10_000, out=str(tmp / f"v{i}"), warmup_steps=10)
            try:
                with variant(name):
                    info = run_engine(cfg, 15)
                line = f"{name:<14} {info['tok_s']:>10,.0f} tok/s  (warm-up {info['warmup_s']:.0f}s)"
            except Exception as exc:
                line = f"{name:<14} FAILED {type(exc).__name__}: {exc}"
            print(line, flush=True)
            lines.append(line)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_variants.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Sampling speed: GPTMini's KV-cache Sampler vs Raschka's uncached ``generate``.

Both run in one process on the SAME GPT-2 124M-sized random weights:
Raschka's ``llms_from_scratch.ch04.GPTModel`` (GPT_CONFIG_124M with context
1024, qkv_bias=True, dropout 0, output head tied to the token embedding like
GPT-2) is built first, its weights are copied into ``GPT(preset_config("gpt2-124m"))``
and the two models are checked to give the same logits before anything is timed.

Setup (``llms-from-scratch`` pins heavy extras; install it without them):

    pip install --no-deps llms-from-scratch
    pip install tqdm matplotlib        # ch05 imports them

Run:  python bench/bench_sampling.py [--tokens 200] [--device cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")  # ch05 imports matplotlib.pyplot
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from _machine import describe as describe_machine  # noqa: E402 - bench/_machine.py

from gptmini.model.gpt import GPT  # noqa: E402
from gptmini.presets import preset_config  # noqa: E402
from gptmini.sample.sampler import Sampler, SamplingSettings, generate_uncached  # noqa: E402

PROMPT = "Every effort moves you forward"  # 5 GPT-2 tokens


def import_raschka():
    try:
        from llms_from_scratch.ch04 import (
            GPTModel,  # only ch04/ch05: nothing is downloaded at import
        )
        from llms_from_scratch.ch05 import generate
    except ImportError as exc:
        sys.exit(
            f"cannot import llms_from_scratch ({exc}).\n"
            "install it with: pip install --no-deps llms-from-scratch && pip install tqdm matplotlib"
        )
    return GPTModel, generate


def raschka_config(cfg) -> dict:
    return {
        "vocab_size": cfg.vocab_size,
        "context_length": cfg.context_length,
        "emb_dim": cfg.d_model,
        "n_heads": cfg.n_heads,
        "n_layers": cfg.n_layers,
        "drop_rate": 0.0,
        "qkv_bias": True,
    }


@torch.no_grad()
def copy_raschka_into_gptmini(ref: torch.nn.Module, model: GPT) -> None:
    """Map Raschka's parameter names onto GPT-2's (both use nn.Linear's (out, in) layout)."""
    V = model.config.vocab_size
    model.wte.weight.zero_()
    model.wte.weight[:V].copy_(ref.tok_emb.weight)  # rows past V are padding, never used
    model.wpe.weight.copy_(ref.pos_emb.weight)
    for blk, rb in zip(model.h, ref.trf_blocks):
        att = rb.att
        blk.attn.c_attn.weight.copy_(torch.cat([att.W_query.weight, att.W_key.weight, att.W_value.weight], 0))
        blk.attn.c_attn.bias.copy_(torch.cat([att.W_query.bias, att.W_key.bias, att.W_value.bias], 0))
        blk.attn.c_proj.weight.copy_(att.out_proj.weight)
        blk.attn.c_proj.bias.copy_(att.out_proj.bias)
        blk.mlp.c_fc.weight.copy_(rb.ff.layers[0].weight)
        blk.mlp.c_fc.bias.copy_(rb.ff.layers[0].bias)
        blk.mlp.c_proj.weight.copy_(rb.ff.layers[2].weight)
        blk.mlp.c_proj.bias.copy_(rb.ff.layers[2].bias)
        blk.ln_1.weight.copy_(rb.norm1.scale)
        blk.ln_1.bias.copy_(rb.norm1.shift)
        blk.ln_2.weight.copy_(rb.norm2.scale)
        blk.ln_2.bias.copy_(rb.norm2.shift)
    model.ln_f.weight.copy_(ref.final_norm.scale)
    model.ln_f.bias.copy_(ref.final_norm.shift)


class _NoStopTokenizer:
    """The GPT-2 tokenizer with end-of-text disabled, so both sides generate exactly N tokens."""

    def __init__(self, tok):
        self._tok = tok
        self.name = tok.name
        self.vocab_size = tok.vocab_size
        self.eot_id = None

    def __getattr__(self, name):
        return getattr(self._tok, name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of the fast samplers (median reported)")
    ap.add_argument("--skip-uncached", action="store_true", help="skip gptmini's own uncached reference row")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    device = torch.device(args.device)
    GPTModel, raschka_generate = import_raschka()

    from gptmini.text.tokenizer import build_tokenizer

    tok = _NoStopTokenizer(build_tokenizer("gpt2"))
    prompt_ids = tok.encode(PROMPT)

    cfg = preset_config("gpt2-124m", vocab_size=tok.vocab_size)
    torch.manual_seed(123)
    ref = GPTModel(raschka_config(cfg))
    with torch.no_grad():
        ref.out_head.weight.copy_(ref.tok_emb.weight)  # tie the head, as GPT-2 (and our preset) do
    model = GPT(cfg)
    copy_raschka_into_gptmini(ref, model)
    ref = ref.to(device).eval()
    model = model.to(device).eval()

    # ---- same weights -> same logits
    idx = torch.tensor([prompt_ids], device=device)
    with torch.no_grad():
        ours_logits, _ = model(idx)
        ref_logits = ref(idx)
    max_diff = (ours_logits - ref_logits).abs().max().item()
    same_argmax = bool(torch.equal(ours_logits.argmax(-1), ref_logits.argmax(-1)))
    print(f"weights copied: max |logit difference| on the prompt = {max_diff:.2e}, same argmax at every position: {same_argmax}")
    if max_diff > 1e-3 or not same_argmax:
        print("the two models disagree; not timing", file=sys.stderr)
        return 1

    n = args.tokens
    settings = SamplingSettings(strategy="greedy", max_new_tokens=n)
    sampler = Sampler(model, tok)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run_ours():
        t0 = time.perf_counter()
        first = None
        ids = []
        for ev in sampler.stream_ids(prompt_ids, settings):
            if first is None:
                first = time.perf_counter() - t0
            ids.append(ev.token_id)
        sync()
        return time.perf_counter() - t0, first, ids

    def run_raschka():
        t0 = time.perf_counter()
        out = raschka_generate(ref, idx, n, cfg.context_length, temperature=0.0, top_k=None, eos_id=None)
        sync()
        return time.perf_counter() - t0, out[0, len(prompt_ids):].tolist()

    def run_uncached():
        t0 = time.perf_counter()
        ids = generate_uncached(model, prompt_ids, n, settings)
        sync()
        return time.perf_counter() - t0, ids

    # warm-up (allocators, thread pools, kernels) on a few tokens each
    list(sampler.stream_ids(prompt_ids, SamplingSettings(max_new_tokens=5)))
    raschka_generate(ref, idx, 3, cfg.context_length)

    def progress(msg):
        print(f"  ... {msg}", file=sys.stderr, flush=True)

    ours_runs = []
    for i in range(args.repeats):
        ours_runs.append(run_ours())
        progress(f"Sampler run {i + 1}/{args.repeats}: {ours_runs[-1][0]:.2f}s")
    ours_time = statistics.median(r[0] for r in ours_runs)
    ttft = statistics.median(r[1] for r in ours_runs)
    ours_ids = ours_runs[0][2]
    ref_time, ref_ids = run_raschka()
    progress(f"ch05.generate: {ref_time:.2f}s")
    rows = [
        ("gptmini Sampler (KV cache)", ours_time, n / ours_time, ttft * 1e3),
        ("llms_from_scratch ch05.generate (no cache)", ref_time, n / ref_time, None),
    ]
    unc_time = None
    if not args.skip_uncached:
        unc_time, unc_ids = run_uncached()
        progress(f"generate_uncached: {unc_time:.2f}s")
        rows.append(("gptmini generate_uncached (no cache)", unc_time, n / unc_time, None))
        assert unc_ids == ours_ids, "cached and uncached gptmini outputs differ"
    agree = next((i for i, (a, b) in enumerate(zip(ours_ids, ref_ids)) if a != b), len(ours_ids))

    loadavg = os.getloadavg() if hasattr(os, "getloadavg") else None
    print()
    print(f"{n} new tokens, greedy, batch 1, prompt {len(prompt_ids)} tokens, gpt2-124m ({model.num_params():,} params),"
          f" {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; {describe_machine()}")
    print(f"{'implementation':<44} {'time (s)':>9} {'tok/s':>9} {'first token (ms)':>17}")
    for name, t, rate, first in rows:
        print(f"{name:<44} {t:9.2f} {rate:9.2f} {'' if first is None else f'{first:.1f}':>17}")
    ratio = ref_time / ours_time
    print(f"speed-up of the KV-cache Sampler over ch05.generate: {ratio:.1f}x (target >= 5x)")
    print(f"greedy token ids identical for the first {agree} of {n} tokens (Sampler vs ch05.generate)")
    if loadavg:
        print(f"load average during the run: {loadavg[0]:.2f} {loadavg[1]:.2f} {loadavg[2]:.2f}")

    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"), "platform": platform.platform(), "torch": torch.__version__,
            "device": str(device), "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "tokens": n,
            "logit_max_diff": max_diff, "ours_s": ours_time, "ours_tok_s": n / ours_time, "ttft_ms": ttft * 1e3,
            "raschka_s": ref_time, "raschka_tok_s": n / ref_time, "ratio": ratio,
            "uncached_s": unc_time, "identical_prefix": agree, "loadavg": loadavg,
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Batched generation (``gptmini respond``) vs one prompt at a time, on the same random weights.

One at a time is the single-prompt KV-cache ``Sampler`` (what training's answers after an evaluation use);
batched is ``sample.batch.generate_many``. Every prompt generates exactly ``--new`` tokens (no end marker, so
both do the same work), greedy, and the batched tokens are checked to equal the Sampler's before the times
are printed.

Run:  python bench/bench_respond.py [--preset cpu-small] [--prompts 32] [--new 64] [--batch-sizes 8,32]
                                    [--device cpu] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from _machine import describe as describe_machine  # noqa: E402 - bench/_machine.py

from gptmini.model.config import ModelConfig  # noqa: E402
from gptmini.model.gpt import GPT  # noqa: E402
from gptmini.presets import PRESETS  # noqa: E402
from gptmini.sample.batch import generate_many  # noqa: E402
from gptmini.sample.sampler import Sampler, TokenEvent  # noqa: E402
from gptmini.sample.settings import SamplingSettings  # noqa: E402


class _Ids:
    """The Sampler's tokenizer: ids only (no end-of-text)."""

    name, eot_id = "ids", None

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def decode_bytes(self, ids):
        return b""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu-small", choices=list(PRESETS))
    ap.add_argument("--vocab", type=int, default=50257, help="vocabulary size (default: GPT-2's)")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--min-len", type=int, default=40)
    ap.add_argument("--max-len", type=int, default=120)
    ap.add_argument("--new", type=int, default=64, help="tokens generated per prompt")
    ap.add_argument("--batch-sizes", default="8,32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=args.vocab, **{**PRESETS[args.preset], "dropout": 0.0})
    model = GPT(cfg).to(args.device).eval()
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(args.min_len, args.max_len + 1, (args.prompts,), generator=g).tolist()
    prompts = [torch.randint(0, args.vocab, (n,), generator=g).tolist() for n in lengths]
    settings = SamplingSettings(max_new_tokens=args.new)
    print(describe_machine())
    print(f"{args.preset} shape ({cfg.describe()}), {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M "
          f"parameters, {args.device}, {torch.get_num_threads()} threads; {args.prompts} prompts of "
          f"{min(lengths)}-{max(lengths)} tokens, {args.new} new tokens each, greedy")

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    sampler = Sampler(model, _Ids(args.vocab))
    one = lambda p: [e.token_id for e in sampler.stream_ids(p, settings) if e.token_id != TokenEvent.FLUSH]  # noqa: E731
    one(prompts[0])  # warm-up
    sync()
    t0 = time.perf_counter()
    expected = [one(p) for p in prompts]
    sync()
    base = time.perf_counter() - t0
    tokens = args.prompts * args.new
    results = {"one_at_a_time_s": base, "tokens": tokens, "batched": {}}
    print(f"  one at a time (Sampler):  {base:7.2f} s  {tokens / base:8.1f} tok/s")
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        generate_many(model, prompts[:bs], SamplingSettings(max_new_tokens=2), batch_size=bs)  # warm-up
        sync()
        t0 = time.perf_counter()
        got = generate_many(model, prompts, settings, batch_size=bs)
        sync()
        took = time.perf_counter() - t0
        same = [x.ids for x in got] == expected
        results["batched"][bs] = {"s": took, "speedup": base / took, "same_tokens": same}
        print(f"  batched, batch {bs:>3}:       {took:7.2f} s  {tokens / took:8.1f} tok/s  "
              f"{base / took:5.2f}x  tokens {'equal' if same else 'DIFFER'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

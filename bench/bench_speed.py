#!/usr/bin/env python
"""Issue 30: GPTMini's training step against the book's, lever by lever, at the book's shapes on this CPU.

    python bench/bench_speed.py [--shapes A,B8,I] [--arms book,main,blocked,memory,now] [--rounds 3] [--steps 4]
                                [--threads N] [--isa avx2] [--profile ARM] [--json FILE]

Shapes (GPT-2 BPE; the same batches for every arm):
  A   the book's GPT_CONFIG_124M: 12 layers x 768, context 256, batch 2, dropout 0.1, untied head (the-verdict)
  B8  4 layers x 256, context 256, batch 8, dropout 0.1 (the-verdict)
  I   chapter 7's instruction fine-tuning: GPT-2 small (12 x 768, context 1024, qkv bias, dropout 0) on the book's
      padded batches of 8 (``ch07.InstructionDataset`` + ``custom_collate_fn``, shuffled; 57-91 tokens each)

Arms (each in a process of its own, so that process-wide settings are its own; the arms alternate ABBA round
after round, so a change in the machine's load hits all of them alike):
  book        ``llms_from_scratch.ch04.GPTModel`` + ``ch05.calc_loss_batch`` + ``torch.optim.AdamW`` (fp32)
  main        GPTMini's model and optimizer (fused AdamW) at ``--dtype auto`` as before issue 30: the plain
              head + ``F.cross_entropy`` over the full fp32 logits, malloc's own settings
  blocked     + the head and its loss a block of rows at a time (``model/head_loss.py``)
  memory      + freed memory kept for the next step (``train/memory.py``); as in the engine, only where every
              batch has one shape (A, B8; for I this arm is ``blocked`` again)
  now         + the math attention kernel for short bf16 training sequences (``model.gpt.attention_kernels``):
              what ``gptmini train`` does today
  compiled    ``now`` with ``torch.compile`` (the first step, compilation included, is reported apart)
  Any GPTMini arm with ``-fp32`` appended runs in fp32 (``--dtype float32``) instead of ``auto``.
A step is what the engine's step does (autocast, backward, gradient norm, optimizer step, zero_grad); the book's
is the inner step of ``train_model_simple``. Reported per arm: the median wall time of ``--steps`` steps after two
warm-up steps (CPU time beside it), tokens per second (input tokens, padding included), and the ratio to the book
(median over rounds; the spread is the lowest and highest ratio of one round's pair).

``--isa avx2`` runs every arm as on a CPU with AVX2 only (no AVX-512, no bf16 in hardware): PyTorch's own
kernels (``ATEN_CPU_CAPABILITY=avx2``), oneDNN (``ONEDNN_MAX_CPU_ISA=AVX2``) and MKL
(``MKL_ENABLE_INSTRUCTIONS=AVX2``) are held to AVX2 in the book's arm and ours alike. On such a CPU
``--dtype auto`` trains in fp32 (``train/device.py``: no native bf16), so there the ``-fp32`` arms are the
default. An emulation on this machine's cores, not a measurement on an AVX2-only CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _reference as R  # noqa: E402  (puts the repo root on sys.path)
from _machine import describe as describe_machine  # noqa: E402

SHAPES = {
    "A": dict(n_layers=12, n_heads=12, d_model=768, context=256, batch=2, dropout=0.1, qkv_bias=False, tied=False,
              lr=4e-4),
    "B8": dict(n_layers=4, n_heads=4, d_model=256, context=256, batch=8, dropout=0.1, qkv_bias=False, tied=False,
               lr=4e-4),
    "I": dict(n_layers=12, n_heads=12, d_model=768, context=1024, batch=8, dropout=0.0, qkv_bias=True, tied=True,
              lr=5e-5),
}
LEVERS = ("main", "blocked", "memory", "now", "compiled")  # each arm has the levers of the ones before it


# ------------------------------------------------------------------ one arm, in its own process
def batches(shape: dict, n: int) -> list:
    """The first ``n`` training batches of the shape's data, as the book's loaders give them (cycled)."""
    import torch
    from torch.utils.data import DataLoader

    if shape is SHAPES["I"]:
        from llms_from_scratch import ch07

        data = json.loads(R.data_file("instruction-data.json").read_text())
        torch.manual_seed(123)
        loader = DataLoader(ch07.InstructionDataset(data[: int(len(data) * 0.85)], R.gpt2_encoding()),
                            batch_size=shape["batch"], shuffle=True, drop_last=True,
                            collate_fn=partial(ch07.custom_collate_fn, allowed_max_length=shape["context"]))
    else:
        text = R.data_file("the-verdict.txt").read_text(encoding="utf-8")
        loader, _ = R.book_loaders(text * 4, dict(R.GPT_CONFIG_124M, context_length=shape["context"]),
                                   batch_size=shape["batch"])
    out: list = []
    while len(out) < n:
        out += [(x, y) for x, y in loader][: n - len(out)]
    return out


def book_step(shape: dict):
    import torch

    ch04, ch05 = R.import_reference()
    cfg = dict(R.GPT_CONFIG_124M, n_layers=shape["n_layers"], n_heads=shape["n_heads"], emb_dim=shape["d_model"],
               context_length=shape["context"], drop_rate=shape["dropout"], qkv_bias=shape["qkv_bias"])
    model = R.build_model(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=shape["lr"], weight_decay=0.1)
    return lambda x, y: R.ref_train_step(model, opt, x, y, ch05.calc_loss_batch), model


def plain_loss(self, x, targets):
    """GPTMini's CPU loss before issue 30: the head over all rows, -inf on the padding columns in place, then
    ``F.cross_entropy`` over the fp32 logits."""
    import torch
    import torch.nn.functional as F

    from gptmini.data.batch import IGNORE_INDEX

    w = self.wte.weight if self.lm_head is None else self.lm_head.weight
    logits = F.linear(x, w)
    with torch.no_grad():
        logits[..., self.config.vocab_size:] = float("-inf")
    return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def our_step(shape: dict, lever: str, dtype: str):
    import torch

    from gptmini.model import gpt
    from gptmini.model.config import ModelConfig
    from gptmini.model.gpt import GPT
    from gptmini.train.device import choose_precision
    from gptmini.train.memory import keep_freed_memory
    from gptmini.train.optim import clip_gradients, make_optimizer

    level = LEVERS.index(lever)
    if level < LEVERS.index("blocked"):
        GPT.loss_from_hidden = plain_loss
    if level >= LEVERS.index("memory") and shape is not SHAPES["I"]:  # as the engine: batches of one shape only
        keep_freed_memory()
    if level < LEVERS.index("now"):
        gpt.attention_kernels = lambda q: contextlib.nullcontext()
    cfg = ModelConfig(vocab_size=50257, context_length=shape["context"], n_layers=shape["n_layers"],
                      n_heads=shape["n_heads"], d_model=shape["d_model"], dropout=shape["dropout"],
                      qkv_bias=shape["qkv_bias"], tie_weights=shape["tied"],
                      emb_init_std=0.02 if shape["tied"] else 1.0)
    device = torch.device("cpu")
    torch.manual_seed(123)
    model = GPT(cfg).train()
    precision = choose_precision(device, dtype, cfg)
    opt = make_optimizer(model, shape["lr"], 0.1, betas=(0.9, 0.95), device_type="cpu", kind="adamw")
    fwd = torch.compile(model) if lever == "compiled" else model

    def step(x, y):
        with precision.autocast():
            _, loss = fwd(x, y)
        loss.backward()
        clip_gradients(model, 0.0, device)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, model, precision.dtype_name


def child(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    shape = SHAPES[args.shape]
    arm = args.child
    lever, dtype = (arm[:-5], "float32") if arm.endswith("-fp32") else (arm, "auto")
    if arm == "book":
        step, model = book_step(shape)
        dtype_name = "float32"
    else:
        step, model, dtype_name = our_step(shape, lever, dtype)
    data = batches(shape, 2 + args.steps)
    t0 = time.perf_counter()
    step(*data[0])
    first = time.perf_counter() - t0
    step(*data[1])
    walls, cpus, tokens = [], [], []
    for x, y in data[2:]:
        w0, c0 = time.perf_counter(), time.process_time()
        step(x, y)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        tokens.append(x.numel())
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step(*data[2])
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=36),
              file=sys.stderr)
    print(json.dumps(dict(arm=arm, shape=args.shape, dtype=dtype_name, threads=torch.get_num_threads(),
                          first_step_s=first, step_s=statistics.median(walls), cpu_s=statistics.median(cpus),
                          tok_s=sum(tokens) / sum(walls), steps=len(walls))))


# ------------------------------------------------------------------ the side-by-side run
ISA_LIMITS = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}


def run_arm(arm: str, shape: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", arm, "--shape", shape, "--steps", str(args.steps)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.profile == arm:
        cmd += ["--profile", arm]
    env = dict(os.environ, **ISA_LIMITS.get(args.isa, {}))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=7200, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{arm} on {shape} failed:\n{out.stderr[-3000:]}")
    if args.profile == arm:
        print(out.stderr[-6000:], flush=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="A,B8,I", help=f"comma-separated: {', '.join(SHAPES)}")
    ap.add_argument("--arms", default="book,main,blocked,memory,now,main-fp32,now-fp32",
                    help=f"comma-separated: book, {', '.join(LEVERS)}, each GPTMini arm also as NAME-fp32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per arm and round (after 2 warm-up steps)")
    ap.add_argument("--threads", type=int, help="torch threads in every arm (default: torch's choice)")
    ap.add_argument("--isa", choices=sorted(ISA_LIMITS), help="run every arm as on a CPU with this instruction set only")
    ap.add_argument("--profile", metavar="ARM", help="print torch.profiler's top ops of one step of ARM")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--shape", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    shapes, arms = args.shapes.split(","), args.arms.split(",")
    bad = [a for a in arms if a != "book" and a.removesuffix("-fp32") not in LEVERS] + \
          [s for s in shapes if s not in SHAPES]
    if bad:
        ap.error(f"unknown arm or shape: {', '.join(bad)}")
    missing = [f for s in shapes for f in (["instruction-data.json"] if s == "I" else ["the-verdict.txt"])
               if R.data_file(f) is None]
    if missing:
        print(f"SKIP: {', '.join(sorted(set(missing)))} not in {R.DATA}: nothing to measure")
        return 0
    R.import_reference()
    print(f"machine: {describe_machine()}", flush=True)
    limits = " ".join(f"{k}={v}" for k, v in ISA_LIMITS.get(args.isa, {}).items())
    print(f"code {R.code_version()}; {time.strftime('%Y-%m-%d %H:%M:%S')}; threads {args.threads or 'default'}"
          + (f"; emulated ISA {args.isa}: {limits}" if args.isa else ""),
          flush=True)
    results: dict[str, dict[str, list[dict]]] = {}
    for r in range(args.rounds):
        for shape in shapes:
            for arm in (arms if r % 2 == 0 else arms[::-1]):
                res = run_arm(arm, shape, args)
                results.setdefault(shape, {}).setdefault(arm, []).append(res)
                print(f"  round {r + 1} {shape:3s} {arm:15s} {res['dtype']:9s} step {res['step_s']:7.3f} s "
                      f"(cpu {res['cpu_s']:7.3f} s) {res['tok_s']:8.1f} tok/s  first step {res['first_step_s']:6.1f} s",
                      flush=True)
    print("\n| shape | arm | dtype | step (s), median of rounds | tok/s | vs book (lowest-highest round) | first step (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for shape in shapes:
        book = results[shape].get("book")
        for arm in arms:
            runs = results[shape][arm]
            step = statistics.median(x["step_s"] for x in runs)
            ratio = ""
            if book:
                pairs = [b["step_s"] / a["step_s"] for a, b in zip(runs, book)]
                ratio = (f"**{statistics.median(b['step_s'] for b in book) / step:.2f}x** "
                         f"({min(pairs):.2f}-{max(pairs):.2f})")
            print(f"| {shape} | {arm} | {runs[0]['dtype']} | {step:.3f} | "
                  f"{statistics.median(x['tok_s'] for x in runs):,.1f} | {ratio} | "
                  f"{statistics.median(x['first_step_s'] for x in runs):.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": describe_machine(), "args": vars(args), "results": results}, default=str,
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

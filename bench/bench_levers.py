#!/usr/bin/env python
"""What each second buys on this CPU: steady training tok/s of a model shape under each precision and
compilation lever, measured side by side (the arms alternate, round after round).

For every shape and arm: the time from the start of the run to its first loss point (data, model,
compilation), then tok/s over ``--seconds`` of steady training after ``--warmup`` seconds. Arms:
fp32, bf16 autocast, fp32 + torch.compile, bf16 + torch.compile.

    python bench/bench_levers.py [--shapes cpu-demo,d256] [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import describe as describe_machine  # noqa: E402 - bench/_machine.py

from gptmini import events as ev  # noqa: E402
from gptmini.train.engine import Trainer  # noqa: E402
from gptmini.train_config import TrainConfig  # noqa: E402

SHAPES = {
    # the default console run (char tokenizer on the embedded corpus)
    "cpu-demo": dict(preset="cpu-demo"),
    # wider and shorter: a candidate demo recipe
    "d192-l3": dict(preset="cpu-demo", d_model=192, n_heads=6, n_layers=3),
    "d256-l4": dict(preset="cpu-demo", d_model=256, n_heads=4, n_layers=4),
    # the Raschka-size reference shape (GPT-2 vocabulary)
    "d256-gpt2": dict(preset="raschka-124m", n_layers=4, n_heads=4, d_model=256, context=256, batch_size=8,
                      tokenizer="gpt2", dropout=0.0),
    # nanoGPT's CPU shakespeare-char recipe
    "nanogpt-cpu": dict(preset="nanogpt-cpu", batch_size=12),
    # wider char models
    "d256-l4-char": dict(preset="cpu-demo", d_model=256, n_heads=4, n_layers=4),
    "d384-l6-char": dict(preset="cpu-demo", d_model=384, n_heads=6, n_layers=6, context=256),
    # Raschka's GPT_CONFIG_124M itself
    "raschka-124m": dict(preset="raschka-124m", tokenizer="gpt2", batch_size=2, dropout=0.0),
}
ARMS = {"fp32": dict(dtype="float32", compile=False), "bf16": dict(dtype="bfloat16", compile=False),
        "fp32+compile": dict(dtype="float32", compile=True), "bf16+compile": dict(dtype="bfloat16", compile=True)}


def measure(shape: dict, arm: dict, warmup: float, seconds: float, work: Path) -> tuple[float, float]:
    """(seconds to the first loss point, steady tok/s)."""
    cfg = TrainConfig(**{**dict(max_steps=10_000_000, eval_interval=10_000_000, save_interval=10_000_000,
                                out=str(Path(tempfile.mkdtemp(dir=work)) / "run")), **shape, **arm})
    trainer = Trainer(cfg)
    marks: list[tuple[float, int]] = []
    t0 = time.perf_counter()
    trainer.subscribe(lambda e: marks.append((time.perf_counter(), e.tokens_seen)) if isinstance(e, ev.Step) else None)
    thread = threading.Thread(target=trainer.run, daemon=True)
    thread.start()
    while not marks and thread.is_alive():
        time.sleep(0.05)
    first = marks[0][0] - t0 if marks else float("nan")
    time.sleep(warmup + seconds)
    trainer.stop(save=False)
    thread.join(120)
    start = next((m for m in marks if m[0] >= marks[0][0] + warmup), marks[-1])
    end = marks[-1]
    return first, (end[1] - start[1]) / max(end[0] - start[0], 1e-9)


def learn(shape: dict, arm: dict, steps: int, work: Path) -> tuple[float, float]:
    """(mean train loss of the last 10 of ``steps`` steps, val loss after them), from one seed."""
    cfg = TrainConfig(**{**dict(max_steps=steps, eval_interval=steps, eval_batches=20, save_interval=10_000_000,
                                out=str(Path(tempfile.mkdtemp(dir=work)) / "run")), **shape, **arm})
    trainer = Trainer(cfg)
    losses: list[float] = []
    vals: list[float] = []
    trainer.subscribe(lambda e: losses.append(e.loss) if isinstance(e, ev.Step)
                      else vals.append(e.val_loss) if isinstance(e, ev.Eval) else None)
    trainer.run()
    return statistics.mean(losses[-10:]), vals[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="cpu-demo,d256-gpt2", help=f"comma-separated: {', '.join(SHAPES)}")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated: {', '.join(ARMS)}")
    ap.add_argument("--seconds", type=float, default=20.0, help="steady seconds timed per arm and round (20)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds after the first loss point not timed (5)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; the arms alternate ABBA (2)")
    ap.add_argument("--learn", type=int, default=0,
                    help="then train each shape and arm this many steps from one seed and compare the losses (0: no)")
    args = ap.parse_args()
    shapes, arms = args.shapes.split(","), args.arms.split(",")
    work = Path(tempfile.mkdtemp(prefix="gptmini-levers-"))
    os.environ.setdefault("GPTMINI_CACHE_DIR", str(work / "cache"))
    print(f"machine: {describe_machine()}; torch {torch.__version__} ({torch.get_num_threads()} threads)", flush=True)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        for shape in shapes:
            order = arms if r % 2 == 0 else list(reversed(arms))
            for arm in order:
                first, rate = measure(SHAPES[shape], ARMS[arm], args.warmup, args.seconds, work)
                results.setdefault((shape, arm), []).append((first, rate))
                print(f"  round {r + 1} {shape:12s} {arm:13s}: first loss after {first:5.1f} s, {rate:9,.0f} tok/s",
                      flush=True)
    print("\n| shape | arm | first loss point | steady tok/s (each round) | vs fp32 |")
    print("| --- | --- | --- | --- | --- |")
    for shape in shapes:
        base = statistics.median(rate for _f, rate in results[(shape, "fp32")]) if (shape, "fp32") in results else None
        for arm in arms:
            runs = results[(shape, arm)]
            rate = statistics.median(r for _f, r in runs)
            ratio = f"{rate / base:.2f}x" if base else ""
            print(f"| {shape} | {arm} | {statistics.median(f for f, _r in runs):.1f} s | {rate:,.0f} "
                  f"({', '.join(f'{r:,.0f}' for _f, r in runs)}) | {ratio} |")
    if args.learn:
        print(f"\nlearning the same? {args.learn} steps from seed 1337 each: train loss (mean of the last 10 steps) / "
              "val loss (20 batches)\n")
        print("| shape | " + " | ".join(arms) + " |")
        print("| --- | " + " | ".join("---" for _ in arms) + " |")
        for shape in shapes:
            cells = [learn(SHAPES[shape], ARMS[arm], args.learn, work) for arm in arms]
            print(f"| {shape} | " + " | ".join(f"{t:.3f} / {v:.3f}" for t, v in cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

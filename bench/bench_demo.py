"""What a user sees after 1, 5 and 15 minutes of the default run on this machine.

Runs the default configuration of ``gptmini train`` / ``gptmini-tui`` (cpu-demo preset, embedded corpus,
char tokenizer) and, at each mark, records step, smoothed train loss, the last validation loss and a
greedy sample from a snapshot of the live weights.

    python bench/bench_demo.py [--marks 60,300,900] [--out bench/README_demo.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gptmini import events as ev  # noqa: E402
from gptmini.engine import Trainer  # noqa: E402
from gptmini.sampling import Sampler, SamplingSettings  # noqa: E402
from gptmini.train_config import TrainConfig  # noqa: E402
from _machine import describe as describe_machine  # noqa: E402 - bench/_machine.py


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--marks", default="60,300,900", help="seconds after the start")
    ap.add_argument("--prompt", default="The ")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    marks = [float(m) for m in args.marks.split(",")]
    tmp = tempfile.mkdtemp(prefix="gptmini-demo-")
    os.environ.setdefault("GPTMINI_CACHE_DIR", str(Path(tmp) / "cache"))
    trainer = Trainer(TrainConfig(out=str(Path(tmp) / "run")))  # the defaults a user gets
    state: dict = {}
    first_step = threading.Event()

    def on(e):
        if isinstance(e, ev.Step):
            state["step"], state["smooth"], state["tok_s"], state["epoch"] = e.step, e.loss_smooth, e.tok_per_s, e.epoch
            if not first_step.is_set():
                state["first_step_s"] = time.perf_counter() - t0
                first_step.set()
        elif isinstance(e, ev.Eval):
            state["val"] = e.val_loss
        elif isinstance(e, ev.RunStarted):
            state["started"] = e

    trainer.subscribe(on)
    t0 = time.perf_counter()
    th = threading.Thread(target=trainer.run, daemon=True)
    th.start()
    rows = []
    for mark in marks:
        time.sleep(max(0.0, mark - (time.perf_counter() - t0)))
        snap = trainer.snapshot()
        text = Sampler(snap.model, snap.tokenizer).generate(args.prompt, SamplingSettings(max_new_tokens=80))
        rows.append((mark, state.get("step"), state.get("epoch"), state.get("smooth"), state.get("val"),
                     state.get("tok_s"), text))
        print(f"{mark / 60:.0f} min: step {state.get('step')} loss {state.get('smooth'):.3f} "
              f"val {state.get('val')} | {args.prompt}{text!r}", flush=True)
    trainer.stop(save=False)
    th.join(timeout=60)
    s = state["started"]
    lines = [
        "# The default run on a 2-core CPU",
        "",
        f"`gptmini train` / `gptmini-tui` defaults: preset cpu-demo ({s.n_params:,} parameters), corpus "
        f"{s.corpus} ({s.train_tokens:,} train tokens, char tokenizer, vocab {s.vocab_size}), batch {s.batch_size} x "
        f"context {s.context_length}. Measured {time.strftime('%Y-%m-%d')} with `python bench/bench_demo.py` on "
        f"{describe_machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads. First loss point after {state['first_step_s']:.1f} s.",
        "",
        "| after | step | epoch | train loss (smoothed) | val loss | tok/s | greedy sample from \"The \" |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mark, step, epoch, smooth, val, tok_s, text in rows:
        sample = (args.prompt + text).replace("\n", " ⏎ ").replace("|", "\\|")
        lines.append(f"| {mark / 60:.0f} min | {step} | {epoch} | {smooth:.3f} | "
                     f"{'-' if val is None else f'{val:.3f}'} | {tok_s:,.0f} | `{sample}` |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

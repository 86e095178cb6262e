#!/usr/bin/env python
"""The first minutes on a 2-core CPU: how fast each recipe learns per second of wall time, side by side.

Each arm is a training configuration run for ``--minutes`` of wall time from the moment it starts (data,
model, compilation and evaluations all count, as they do for a user). Arms alternate (ABBA) over
``--rounds``. For each arm: the first loss point, the val loss at each mark (the last evaluation before
it), the time to reach each val level, and a greedy sample at each mark (with the share of its words
that are words of the corpus: "real words").

    python bench/bench_demo.py                                   # before vs now, embedded corpus
    python bench/bench_demo.py --arms nanogpt,shakespeare --data ../shared/data/tinyshakespeare.txt \\
        --minutes 6 --levels 2.2,2.0,1.92 --marks 60,120,300
"""

from __future__ import annotations

import argparse
import os
import re
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
from gptmini.sample.sampler import Sampler, SamplingSettings  # noqa: E402
from gptmini.train.engine import Trainer  # noqa: E402
from gptmini.train_config import TrainConfig  # noqa: E402

ARMS = {
    # The defaults of gptmini train / gptmini-tui before the issue "The first five minutes", pinned here
    # explicitly so the comparison survives later changes of the defaults.
    "before": dict(n_layers=4, n_heads=4, d_model=128, context=128, dropout=0.0, batch_size=16, lr=1e-3,
                   min_lr=1e-4, epochs=10, eval_interval=100, eval_batches=10, dtype="float32", compile=False,
                   tokenizer="char"),
    # The defaults now: whatever TrainConfig() gives (the console's run with no options).
    "now": dict(),
    # The two Muon recipes measured against each other (2026-12-03): the first one's context 128 x batch 16,
    # and context 64 x batch 32 (the same tokens per step), the default since.
    "muon-ctx128": dict(context=128, batch_size=16, optimizer="muon", lr=5e-3, warmup_steps=20),
    "muon-ctx64": dict(context=64, batch_size=32, optimizer="muon", lr=5e-3, warmup_steps=20),
    # nanoGPT's CPU shakespeare-char recipe, in this engine (bench/bench_learning.py "nanogpt").
    "nanogpt": dict(preset="nanogpt-cpu", tokenizer="char", n_layers=4, n_heads=4, d_model=128, context=64,
                    dropout=0.0, bias=False, beta2=0.99, batch_size=12, max_steps=2000, lr=1e-3, min_lr=1e-4,
                    warmup_steps=100, lr_decay_steps=2000, dtype="float32", compile=False),
    # This project's recipe for a char corpus on a CPU, on shakespeare (the defaults with another corpus).
    "shakespeare": dict(),
}
LEVELS = "2.2,2.0,1.8,1.6"  # val loss levels to time, by default
EVAL = dict(eval_interval=100, eval_batches=20)  # --same-eval: one evaluation protocol for every arm


def run_arm(name: str, options: dict, data: list[str] | None, minutes: float, marks: list[float],
            levels: list[float], prompt: str, work: Path, words: set[str]) -> dict:
    cfg = TrainConfig(**{**options, "data": data, "out": str(Path(tempfile.mkdtemp(dir=work)) / name),
                         "save_interval": 10_000_000})
    trainer = Trainer(cfg)
    evals: list[tuple[float, int, float]] = []
    state: dict = {}
    t0 = time.perf_counter()

    def on(e) -> None:
        if isinstance(e, ev.Step) and "first" not in state:
            state["first"] = time.perf_counter() - t0
        elif isinstance(e, ev.Eval):
            evals.append((time.perf_counter() - t0, e.step, e.val_loss))
        elif isinstance(e, ev.RunStarted):
            state["started"] = e
        elif isinstance(e, ev.Finished) and e.reason == "completed":
            state["ended"] = time.perf_counter() - t0

    trainer.subscribe(on)
    thread = threading.Thread(target=trainer.run, daemon=True)
    thread.start()
    samples = []
    for mark in marks:
        time.sleep(max(0.0, mark - (time.perf_counter() - t0)))
        try:
            snap = trainer.snapshot(timeout=120)
            text = Sampler(snap.model, snap.tokenizer).generate(prompt, SamplingSettings(max_new_tokens=80))
        except Exception as exc:  # still loading
            text = f"({type(exc).__name__})"
        samples.append(text)
    time.sleep(max(0.0, minutes * 60 - (time.perf_counter() - t0)))
    trainer.stop(save=False)
    thread.join(120)
    at_mark = [min((v for t, _s, v in evals if t <= mark), default=None) for mark in marks]
    reach = [next((t for t, _s, v in evals if v <= level), None) for level in levels]
    return {"first": state.get("first"), "at_mark": at_mark, "reach": reach, "samples": samples,
            "real_words": [real_word_share(s, words) for s in samples], "evals": evals,
            "started": state.get("started"), "ended": state.get("ended")}


def real_word_share(text: str, words: set[str]) -> float:
    """The share of the sample's words (letters only, 2+ long) that appear as words in the corpus."""
    found = re.findall(r"[A-Za-z]{2,}", text)
    return sum(w.lower() in words for w in found) / len(found) if found else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", default="before,now", help=f"comma-separated: {', '.join(ARMS)}")
    ap.add_argument("--data", nargs="*", default=None, help="text files (default: the embedded corpus)")
    ap.add_argument("--minutes", type=float, default=5.0, help="wall time per arm (5)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; the arms alternate ABBA (2)")
    ap.add_argument("--marks", default="60,120,300", help="seconds after the start (60,120,300)")
    ap.add_argument("--levels", default=LEVELS, help=f"val loss levels to time ({LEVELS})")
    ap.add_argument("--prompt", default="The ")
    ap.add_argument("--same-eval", action="store_true", help="evaluate every arm every 100 steps on 20 batches")
    ap.add_argument("--eval-interval", type=int, default=None, metavar="N",
                    help="evaluate every arm every N steps on 10 batches: a finer grid for the times to a level")
    ap.add_argument("--out", default=None, help="append the result to this markdown file")
    args = ap.parse_args()
    arms = args.arms.split(",")
    marks = [float(m) for m in args.marks.split(",")]
    levels = [float(v) for v in args.levels.split(",")]
    work = Path(tempfile.mkdtemp(prefix="gptmini-demo-"))
    os.environ.setdefault("GPTMINI_CACHE_DIR", str(work / "cache"))
    from gptmini.text.corpus import load_corpus

    corpus = load_corpus(args.data)
    words = {w.lower() for w in re.findall(r"[A-Za-z]{2,}", "".join(corpus.iter_text()))}
    print(f"machine: {describe_machine()}; torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"corpus {corpus.name}", flush=True)
    results: dict[str, list[dict]] = {a: [] for a in arms}
    for r in range(args.rounds):
        for name in (arms if r % 2 == 0 else list(reversed(arms))):
            options = {**ARMS[name], **(EVAL if args.same_eval else {}),
                       **(dict(eval_interval=args.eval_interval, eval_batches=10) if args.eval_interval else {})}
            res = run_arm(name, options, args.data, args.minutes, marks, levels, args.prompt, work, words)
            results[name].append(res)
            print(f"  round {r + 1} {name}: first loss {res['first']:.1f} s; val at marks "
                  f"{[None if v is None else round(v, 3) for v in res['at_mark']]}; reach {levels}: "
                  f"{[None if t is None else round(t) for t in res['reach']]} s"
                  + (f"; its last step ended {res['ended']:.0f} s after the start" if res["ended"] else ""), flush=True)
    lines = [f"### {time.strftime('%Y-%m-%d %H:%M')} — {describe_machine()}", "",
             f"torch {torch.__version__} ({torch.get_num_threads()} threads); corpus {corpus.name}; "
             f"`python bench/bench_demo.py --arms {args.arms} --minutes {args.minutes:g} --rounds {args.rounds}"
             f"{' --same-eval' if args.same_eval else ''}"
             f"{f' --eval-interval {args.eval_interval}' if args.eval_interval else ''}"
             f"{f' --levels {args.levels}' if args.levels != LEVELS else ''}`", "",
             "| arm | model | first loss point | " + " | ".join(f"val at {m / 60:g} min" for m in marks)
             + " | " + " | ".join(f"time to val {v:g}" for v in levels) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in marks) + " | " + " | ".join("---" for _ in levels) + " |"]

    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    for name in arms:
        runs = results[name]
        s = runs[0]["started"]
        model = (f"{s.model_config['n_layers']}L {s.model_config['n_heads']}H d{s.model_config['d_model']} "
                 f"ctx{s.context_length} b{s.batch_size} {s.dtype}" if s else "?")
        vals = [med(r["at_mark"][i] for r in runs) for i in range(len(marks))]
        reach = [[r["reach"][i] for r in runs] for i in range(len(levels))]
        cells = ["-" if v is None else f"{v:.3f}" for v in vals]
        times = ["not reached" if any(t is None for t in ts) else f"{med(ts):.0f} s ({', '.join(f'{t:.0f}' for t in ts)})"
                 for ts in reach]
        lines.append(f"| {name} | {model} | {med(r['first'] for r in runs):.1f} s | " + " | ".join(cells) + " | "
                     + " | ".join(times) + " |")
    lines += ["", "Greedy samples (first round) and the share of their words found in the corpus:", ""]
    for name in arms:
        for mark, text, share in zip(marks, results[name][0]["samples"], results[name][0]["real_words"]):
            sample = (args.prompt + text).replace("\n", " ⏎ ").replace("|", "\\|")
            lines.append(f"* {name}, {mark / 60:g} min ({share:.0%} real words): `{sample}`")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

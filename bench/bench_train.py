"""Training throughput on the CPU: GPTMini's engine vs Raschka's ch. 5 loop, side by side.

    python bench/bench_train.py [--configs A B] [--quick] [--threads N] [--no-compile]
                                [--no-book] [--no-profile] [--json out.json]

Configs (GPT-2 BPE, vocab 50257, dropout 0.1, qkv_bias False, context 256, batch 2):
  A  Raschka's GPT_CONFIG_124M: 12 layers, 12 heads, 768 dims
  B  small: 4 layers, 4 heads, 256 dims

Arms, all in this one process, on the-verdict.txt tokens:
  ref       ``llms_from_scratch.ch04.GPTModel`` + the inner step of ch05's
            ``train_model_simple`` (zero_grad, calc_loss_batch, backward,
            AdamW(lr 4e-4, wd 0.1).step()), batches from the book's data loader.
  ours      GPTMini's real engine (``Trainer.run()`` on a worker thread, events on:
            a no-op subscriber plus the metrics.jsonl writer it always attaches).
  compiled  the same with ``compile=True`` (torch.compile / inductor on the CPU).

Steady state: each arm first runs warm-up steps (not timed; for ``compiled`` they
include compilation, reported separately), then the arms take turns in blocks
of ``--block`` steps (default 1: ref, ours, compiled, ref, ours, ... step by step)
so load from other processes hits all of them alike. The engine is paused between
its blocks (``Trainer.pause()`` from a Step subscriber; paused time is excluded). A step's time is the gap between its Step
event and the previous one (the first step of a block is timed from the
"running" state event). The corpus is the-verdict.txt repeated so that no epoch
boundary (which evaluates and checkpoints) falls inside the timed steps.
tok/s = tokens per step / median step time.

"Book loop" (a different comparison): the reference's ``train_model_simple`` with
eval_freq=5, eval_iter=5 and its per-epoch sample, vs our engine with its default
evaluation settings (eval_interval 100, eval_batches 10; it also evaluates,
samples and checkpoints at every epoch end), on the plain the-verdict.txt;
tokens trained / wall time of the training call.

Profiling (on unless ``--no-profile``) times forward / backward / optimizer of a step
of each model and prints torch.profiler's top ops for ref and ours.

On a 2-core machine shared with other work, use ``--threads 1``: two OpenMP threads
stall whenever one of them is descheduled (see bench/README.md).

Setup: ``pip install --no-deps llms-from-scratch`` and ``pip install numpy tqdm matplotlib``.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _reference as R  # noqa: E402  (puts the repo root on sys.path, sets MPLBACKEND)
import torch  # noqa: E402
from _machine import describe as describe_machine  # noqa: E402 - bench/_machine.py

from gptmini import events as ev  # noqa: E402
from gptmini.train.engine import Trainer  # noqa: E402
from gptmini.train_config import TrainConfig  # noqa: E402

CONFIGS = {
    "A": dict(label="A: GPT_CONFIG_124M (12/12/768)", n_layers=12, n_heads=12, d_model=768),
    "B": dict(label="B: small (4/4/256)", n_layers=4, n_heads=4, d_model=256),
}
CONTEXT, BATCH, LR, WD = 256, 2, 4e-4, 0.1


def ref_cfg(c: dict) -> dict:
    return dict(R.GPT_CONFIG_124M, n_layers=c["n_layers"], n_heads=c["n_heads"], emb_dim=c["d_model"])


def our_train_config(c: dict, data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=[str(data)], preset="raschka-124m", tokenizer="gpt2", n_layers=c["n_layers"],
                n_heads=c["n_heads"], d_model=c["d_model"], context=CONTEXT, dropout=0.1, stride=CONTEXT,
                batch_size=BATCH, lr=LR, min_lr=LR, warmup_steps=0, weight_decay=WD, grad_clip=0.0,
                val_fraction=0.1, out=str(out), device="cpu", compile=False, seed=123)
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------------- arms
class RefArm:
    name = "ref"

    def __init__(self, c: dict, text: str):
        ch04, self.ch05 = R.import_reference()
        self.model = R.build_model(ref_cfg(c))
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=LR, weight_decay=WD)
        self.loader, _ = R.book_loaders(text, ref_cfg(c), batch_size=BATCH)
        self._it = iter(self.loader)
        self.n_params = R.count_params(self.model)
        self.times: list[float] = []

    def _batch(self):
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            return next(self._it)

    def block(self, k: int, record: bool = True) -> list[float]:
        out = []
        for _ in range(k):
            t0 = time.perf_counter()
            x, y = self._batch()
            R.ref_train_step(self.model, self.opt, x, y, self.ch05.calc_loss_batch)
            out.append(time.perf_counter() - t0)
        if record:
            self.times += out
        return out

    def one_step_parts(self):
        x, y = self._batch()
        m, opt = self.model, self.opt
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = self.ch05.calc_loss_batch(x, y, m, "cpu")
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2

    def close(self):
        pass


class OursArm:
    """The real engine on a worker thread, paused between blocks."""

    def __init__(self, name: str, cfg: TrainConfig):
        self.name = name
        self.trainer = Trainer(cfg, start_paused=True)
        self.trainer.subscribe(lambda e: None)  # a no-op subscriber, like a cheap UI
        self.trainer.subscribe(self._on_event)
        self._lock = threading.Lock()
        self._paused = threading.Event()
        self._left = 0
        self._block: list[tuple[str, float, float]] = []
        self.times: list[float] = []
        self.engine_rates: list[float] = []
        self.first_step_s: float | None = None
        self.errors: list[str] = []
        self.n_params = None
        self._thread = threading.Thread(target=self.trainer.run, name=f"bench-{name}", daemon=True)
        self._thread.start()
        self._wait()
        if self.errors or self.trainer.model is None:
            raise RuntimeError(f"{name}: the engine did not start: {self.errors}")
        self.n_params = self.trainer.model.num_params()
        self.n_params_stored = sum(p.numel() for p in self.trainer.model.parameters())

    def _on_event(self, e: ev.Event) -> None:
        if isinstance(e, ev.StateChanged):
            if e.state == "running":
                self._block.append(("run", e.time, 0.0))
            elif e.state in ("paused", "finished", "error"):
                self._paused.set()
        elif isinstance(e, ev.Step):
            self._block.append(("step", e.time, e.tok_per_s))
            self._left -= 1
            if self._left == 0:
                self.trainer.pause()
        elif isinstance(e, ev.Error):
            self.errors.append(e.message)
        elif isinstance(e, (ev.Eval, ev.CheckpointSaved)):
            self.errors.append(f"unexpected {e.kind} event inside the timed window (step {e.step})")

    def _wait(self, timeout: float = 3600) -> None:
        if not self._paused.wait(timeout):
            raise RuntimeError(f"{self.name}: the engine did not pause within {timeout}s")

    def block(self, k: int, record: bool = True) -> list[float]:
        self._block = []
        self._left = k
        self._paused.clear()
        self.trainer.resume()
        self._wait()
        if self.errors:
            raise RuntimeError(f"{self.name}: {self.errors}")
        stamps = [t for kind, t, _ in self._block]
        out = [b - a for a, b in zip(stamps, stamps[1:])]
        if record:
            self.times += out
            self.engine_rates.append(self._block[-1][2])
        elif self.first_step_s is None:
            self.first_step_s = out[0]
        return out

    def one_step_parts(self):
        """Forward / backward / optimizer of the engine's own model and optimizer (engine paused)."""
        t = self.trainer
        fwd = t._fwd
        x, y = t._next_micro_batch()
        t0 = time.perf_counter()
        _, loss = fwd(x, y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), math.inf)
        t.optimizer.step()
        t.optimizer.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2

    def close(self) -> None:
        self.trainer.stop(save=False)
        self.trainer.resume()
        self._thread.join(timeout=600)


# ----------------------------------------------------------------- helpers
def tok_s(times: list[float]) -> float:
    return BATCH * CONTEXT / statistics.median(times) if times else float("nan")


def profile_step(arm, label: str, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        arm.one_step_parts()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=38)
    return f"--- torch.profiler, one step of {label} (sorted by self CPU time)\n{table}"


def repeated_corpus(text: str, min_batches: int, folder: Path) -> Path:
    """the-verdict.txt repeated so that one epoch holds at least ``min_batches`` batches."""
    reps = max(1, math.ceil(min_batches / 9) + 1)  # 9 batches of 2x256 per copy
    path = folder / f"the-verdict-x{reps}.txt"
    path.write_text((text.rstrip("\n") + "\n\n") * reps)
    return path


def throughput(key: str, args, text: str, tmp: Path) -> dict:
    c = CONFIGS[key]
    k = args.block
    rounds, warm = args.rounds or (5 if key == "A" else 12), args.warmup
    if args.quick:
        k, rounds, warm = 1, 2, 1
    need = warm + 2 + rounds * k + 2
    corpus = repeated_corpus(text, need + 12, tmp)  # + profiling steps
    print(f"\n=== throughput {c['label']}: warm-up {warm} step(s), then {rounds} rounds of {k} steps per arm",
          flush=True)
    arms: list = [RefArm(c, corpus.read_text())]
    arms.append(OursArm("ours", our_train_config(c, corpus, tmp / f"{key}-ours", max_steps=need + 5,
                                                 eval_interval=100_000, save_interval=100_000)))
    compile_arm = None
    if args.compile:
        compile_arm = OursArm("compiled", our_train_config(c, corpus, tmp / f"{key}-compiled", max_steps=need + 5,
                                                           eval_interval=100_000, save_interval=100_000,
                                                           compile=True))
        arms.append(compile_arm)
    t_warm = {}
    for arm in arms:
        t0 = time.perf_counter()
        arm.block(warm + (1 if arm is compile_arm else 0), record=False)
        t_warm[arm.name] = time.perf_counter() - t0
        print(f"  warm-up {arm.name}: {t_warm[arm.name]:.1f}s", flush=True)
    for r in range(rounds):
        for arm in arms:
            ts = arm.block(k)
            print(f"  round {r + 1} {arm.name:15s}: " + " ".join(f"{t:.2f}s" for t in ts), flush=True)
    res = {"config": c["label"], "threads": torch.get_num_threads(), "block": k, "rounds": rounds}
    for arm in arms:
        res[arm.name] = dict(tok_s=round(tok_s(arm.times), 1), median_step_s=round(statistics.median(arm.times), 3),
                             steps_timed=len(arm.times), params=arm.n_params)
        if isinstance(arm, OursArm):
            res[arm.name]["params_stored"] = arm.n_params_stored
            res[arm.name]["engine_tok_s_last"] = [round(x, 1) for x in arm.engine_rates]
    res["ratio_ours_vs_ref"] = round(res["ours"]["tok_s"] / res["ref"]["tok_s"], 3)
    if compile_arm is not None:
        res["ratio_compiled_vs_ref"] = round(res["compiled"]["tok_s"] / res["ref"]["tok_s"], 3)
        steady = statistics.median(compile_arm.times)
        res["compiled"]["first_step_s"] = round(compile_arm.first_step_s or float("nan"), 1)
        res["compiled"]["compile_s_est"] = round((compile_arm.first_step_s or 0) - steady, 1)
        res["compiled"]["warmup_s"] = round(t_warm["compiled"], 1)
    if args.profile:
        parts = {}
        for arm in arms:
            arm.one_step_parts()  # one untimed step (allocator warm)
            p = [arm.one_step_parts() for _ in range(2 if not args.quick else 1)]
            parts[arm.name] = [round(statistics.median(x[i] for x in p), 3) for i in range(3)]
        res["phases_fwd_bwd_opt_s"] = parts
        print("  phases (forward, backward, optimizer+zero_grad) s: " + json.dumps(parts), flush=True)
        for arm in arms[:2]:
            txt = profile_step(arm, f"{arm.name} ({c['label']})", args.profile_rows)
            print(txt, flush=True)
            res[f"profile_{arm.name}"] = txt
    for arm in arms:
        arm.close()
    del arms, compile_arm
    gc.collect()
    print(f"  => ref {res['ref']['tok_s']} tok/s, ours {res['ours']['tok_s']} tok/s, ratio "
          f"{res['ratio_ours_vs_ref']}x" + (f"; compiled {res['compiled']['tok_s']} tok/s "
                                            f"({res['ratio_compiled_vs_ref']}x)" if "compiled" in res else ""),
          flush=True)
    return res


def book_loop(key: str, args, text: str, verdict: Path, tmp: Path) -> dict:
    c = CONFIGS[key]
    epochs = args.book_epochs.get(key, 1) if not args.quick else 1
    print(f"\n=== book loop {c['label']}: {epochs} epoch(s) each", flush=True)
    ch04, ch05 = R.import_reference()
    enc = R.gpt2_encoding()
    # reference: train_model_simple exactly as the book calls it
    model = R.build_model(ref_cfg(c))
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    train_loader, val_loader = R.book_loaders(text, ref_cfg(c), batch_size=BATCH)
    buf = io.StringIO()
    t0 = time.perf_counter()
    with redirect_stdout(buf):
        _, _, tokens = ch05.train_model_simple(model, train_loader, val_loader, opt, "cpu", num_epochs=epochs,
                                               eval_freq=5, eval_iter=5, start_context="Every effort moves you",
                                               tokenizer=enc)
    ref_wall = time.perf_counter() - t0
    ref_tokens = epochs * len(train_loader) * BATCH * CONTEXT
    del model, opt
    gc.collect()
    # ours: the engine with its default evaluation settings on the plain corpus
    t_run: list[float] = []
    saves: list[float] = []
    n_eval = [0]

    def on(e):
        if isinstance(e, ev.StateChanged) and e.state == "running" and not t_run:
            t_run.append(time.perf_counter())
        elif isinstance(e, ev.CheckpointSaved):
            saves.append(e.seconds)
        elif isinstance(e, ev.Eval):
            n_eval[0] += 1

    tr = Trainer(our_train_config(c, verdict, tmp / f"{key}-book", epochs=epochs))
    tr.subscribe(on)
    fin = tr.run()
    ours_wall = time.perf_counter() - t_run[0]
    ours_tokens = fin.tokens_seen
    del tr
    gc.collect()
    res = dict(config=c["label"], epochs=epochs,
               ref=dict(wall_s=round(ref_wall, 1), tokens=ref_tokens, tok_s=round(ref_tokens / ref_wall, 1),
                        evals=len(train_loader) * epochs // 5 + 1),
               ours=dict(wall_s=round(ours_wall, 1), tokens=ours_tokens, tok_s=round(ours_tokens / ours_wall, 1),
                         evals=n_eval[0], checkpoints=len(saves), blocked_s=[round(s, 2) for s in saves]))
    res["ratio_ours_vs_ref"] = round(res["ours"]["tok_s"] / res["ref"]["tok_s"], 3)
    print(f"  ref {res['ref']}\n  ours {res['ours']}\n  => ratio {res['ratio_ours_vs_ref']}x", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["A", "B"], choices=sorted(CONFIGS))
    ap.add_argument("--quick", action="store_true", help="config B only, few steps (smoke test)")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--rounds", type=int, help="rounds of blocks (default 5 for A, 12 for B)")
    ap.add_argument("--block", type=int, default=1, help="steps per arm per round (default 1: arms alternate "
                    "step by step)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--no-book", dest="book", action="store_false")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--profile-rows", type=int, default=14)
    ap.add_argument("--book-epochs", default="A=1,B=3", help="epochs of the book-loop comparison per config")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    print(f"machine: {describe_machine()}", flush=True)
    args.book_epochs = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in args.book_epochs.split(",") if kv}
    if args.quick and args.configs == ["A", "B"]:
        args.configs = ["B"]
    if args.threads:
        torch.set_num_threads(args.threads)
    verdict = R.data_file("the-verdict.txt")
    if verdict is None:
        print(f"SKIP: {R.DATA / 'the-verdict.txt'} is not present (shared data); nothing to measure")
        return
    R.import_reference()
    text = verdict.read_text(encoding="utf-8")
    head = dict(date=time.strftime("%Y-%m-%d %H:%M:%S"), torch=torch.__version__, threads=torch.get_num_threads(),
                cpus=os.cpu_count(), machine=platform.machine(), python=platform.python_version(),
                load_avg=os.getloadavg(), gptmini=R.code_version())
    print(json.dumps(head), flush=True)
    results: dict = {"machine": head, "throughput": [], "book_loop": []}
    with tempfile.TemporaryDirectory(prefix="gptmini-bench-train-") as tmpdir:
        tmp = Path(tmpdir)
        os.environ.setdefault("GPTMINI_CACHE_DIR", str(tmp / "cache"))
        for key in args.configs:
            results["throughput"].append(throughput(key, args, text, tmp))
        if args.book:
            for key in args.configs:
                results["book_loop"].append(book_loop(key, args, text, verdict, tmp))
    results["machine"]["load_avg_end"] = os.getloadavg()
    print("\n=== summary (steady-state training tok/s, median of timed steps)")
    print(f"{'config':34s} {'arm':15s} {'params':>12s} {'tok/s':>9s} {'vs ref':>7s}")
    for r in results["throughput"]:
        for arm in ("ref", "ours", "compiled"):
            if arm in r:
                ratio = r[arm]["tok_s"] / r["ref"]["tok_s"]
                print(f"{r['config']:34s} {arm:15s} {r[arm]['params']:>12,} {r[arm]['tok_s']:>9.1f} {ratio:>6.2f}x")
    for r in results["book_loop"]:
        print(f"book loop {r['config']}: ref {r['ref']['tok_s']} tok/s, ours {r['ours']['tok_s']} tok/s "
              f"({r['ratio_ours_vs_ref']}x, {r['epochs']} epoch(s), evaluation and checkpoints included)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()

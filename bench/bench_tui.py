#!/usr/bin/env python
"""Benchmark the training console against headless training, side by side.

1. Training throughput: the same run (same config, same steps) trained by a
   bare ``Trainer`` and inside ``GPTMiniApp`` (headless ``App.run_test``, which
   composes and renders every frame but writes it nowhere), in pairs run in
   ABBA order to cancel machine drift; the median per-pair ratio must be
   >= 0.95. Two models: a Python-bound micro model (worst case) and the
   cpu-demo preset. The pseudo-terminal run of (3) adds an unpaired number.
1b. The same comparison between the real programs: ``gptmini train`` and
   ``gptmini-tui`` in a 120x40 pty run as two processes, only one at a time
   (the other frozen by SIGSTOP), alternating every few seconds; tok/s from
   each run's metrics.jsonl. The fine alternation cancels this VM's drifting
   CPU speed, which swamps whole-run pairs.
2. Key-press-to-screen latency while training, through a real pseudo-terminal:
   time from writing the key to the pty until the changed text arrives in the
   output (strategy label for 1-4; ``PAUSING…``/``RESUMING…`` for space, and
   the engine-confirmed ``PAUSED``/``RUNNING`` for information); p95 must be
   <= 50 ms.
3. Terminal output: bytes/s the app writes to a 120x40 pty during ~60 s of
   steady training (startup paint excluded, reported separately); must be
   <= 20 KB/s. The app's RSS at the start and end of that window is reported.
4. Memory over a long run: a million Step events through the app's bridge into
   its loss history (tracemalloc: bytes per step), and how many points the
   plot draws from them at 120 columns.

Usage: ``python bench/bench_tui.py [--threads 1] [--seconds 60] [--pairs 8] [--demo-pairs 4] [--record]``
(about 15 minutes with the defaults; ``--skip-throughput`` for the pty part alone)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _machine import describe as describe_machine  # noqa: E402 - bench/_machine.py

HERE = Path(__file__).resolve().parent
WORDS = (
    "the model learns to predict the next token from the tokens before it and every effort moves you "
    "closer to a lower loss while the optimizer follows the gradient down a long and winding valley"
).split()


def make_corpus(path: Path, n_bytes: int = 200_000) -> Path:
    import random

    rng = random.Random(7)
    lines, size = [], 0
    while size < n_bytes:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
        lines.append(line)
        size += len(line) + 1
    path.write_text("\n".join(lines) + "\n")
    return path


THREADS: int | None = None  # --threads: passed to every run as TrainConfig.threads / gptmini-tui --threads
COMPARE: list[str] = []  # --compare-runs: folders of finished runs every gptmini-tui shows beside its own
WARMUP = 5.0  # (1b) seconds each side runs alone, untimed, before the windows


def compare_args() -> list[str]:
    return ["--compare", *COMPARE] if COMPARE else []


def make_compare_runs(folder: Path, n: int, steps: int) -> Path:
    """``n`` finished runs of ``steps`` steps each (a step line per step, an eval every 500), written as the
    engine writes metrics.jsonl; what a user who compares tens of long runs gives ``--compare``."""
    import math

    from gptmini import events as ev

    enc = json.JSONEncoder(separators=(",", ":"))
    for r in range(n):
        run = folder / f"run-{r:02d}"
        run.mkdir(parents=True, exist_ok=True)
        floor, t0 = 1.5 + 0.05 * r, 1.7e9 + 1e5 * r
        with (run / "metrics.jsonl").open("w") as fh:
            fh.write(enc.encode(ev.StateChanged(state="running", step=0, time=t0).to_record()) + "\n")
            for s in range(1, steps + 1):
                loss = floor + 2.5 * math.exp(-s / (steps / 10))
                fh.write(enc.encode(ev.Step(step=s, epoch=1 + s // 1000, batch=1 + s % 1000, batches_per_epoch=1000,
                                            total_steps=steps, tokens_seen=512 * s, loss=loss, loss_smooth=loss,
                                            lr=1e-3, grad_norm=1.0, tok_per_s=1e4, eta_s=0.0,
                                            time=t0 + 0.01 * s).to_record()) + "\n")
                if s % 500 == 0:
                    fh.write(enc.encode(ev.Eval(step=s, epoch=1, tokens_seen=512 * s, val_loss=loss + 0.1,
                                                val_ppl=1.0, train_loss=loss, best=False,
                                                time=t0 + 0.01 * s).to_record()) + "\n")
            fh.write(enc.encode(ev.Finished(step=steps, reason="completed", loss=loss, val_loss=None,
                                            elapsed_s=0.01 * steps, tokens_seen=512 * steps,
                                            time=t0 + 0.01 * steps).to_record()) + "\n")
    return folder


def _threads() -> dict:
    return {"threads": THREADS} if THREADS else {}


def tiny_options(corpus: Path, out: Path, steps: int) -> dict:
    return dict(
        data=[str(corpus)], tokenizer="char", n_layers=1, d_model=32, n_heads=2, context=32, batch_size=4,
        max_steps=steps, eval_interval=100_000, save_interval=100_000, out=str(out), seed=1, **_threads(),
    )


def demo_options(corpus: Path, out: Path, steps: int) -> dict:
    """The out-of-the-box CPU run: the cpu-demo preset (4 layers, d_model 128, context 64, batch 32)."""
    return dict(data=[str(corpus)], tokenizer="char", max_steps=steps, eval_interval=100_000,
                save_interval=100_000, out=str(out), seed=1, **_threads())


def cli_args(opts: dict) -> list[str]:
    args = []
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        args += [flag, *map(str, v)] if isinstance(v, list) else [flag, str(v)]
    return args


class StepProbe:
    """Engine subscriber recording (step, tokens_seen, wall clock, training thread's CPU time) per Step.

    It runs on the training thread, so ``time.thread_time()`` is that thread's CPU time: CPU / wall is
    the share of the time the training loop actually ran (the rest it waited for the GIL or a core).
    """

    def __init__(self) -> None:
        self.points: list[tuple[int, int, float, float]] = []

    def __call__(self, event) -> None:
        from gptmini import events as ev

        if isinstance(event, ev.Step):
            self.points.append((event.step, event.tokens_seen, time.perf_counter(), time.thread_time()))

    def measure(self, skip: int) -> tuple[float, float]:
        """(tokens per second, busy share of the training thread) after the first ``skip`` steps."""
        pts = [p for p in self.points if p[0] > skip]
        if len(pts) < 2:
            return float("nan"), float("nan")
        (_, t0, c0, u0), (_, t1, c1, u1) = pts[0], pts[-1]
        return (t1 - t0) / (c1 - c0), (u1 - u0) / (c1 - c0)


# ---------------------------------------------------------------- (1) throughput
def run_headless(opts: dict, skip: int) -> float:
    from gptmini.train.engine import Trainer
    from gptmini.train_config import TrainConfig

    trainer = Trainer(TrainConfig(**opts))
    probe = StepProbe()
    trainer.subscribe(probe)
    thread = threading.Thread(target=trainer.run, daemon=True)  # same threading as the app
    thread.start()
    thread.join()
    return probe.measure(skip)


def run_in_app(opts: dict, skip: int) -> float:
    from gptmini.train_config import TrainConfig
    from gptmini_tui.app import GPTMiniApp

    probe = StepProbe()

    async def go() -> None:
        app = GPTMiniApp(TrainConfig(**opts), compare=[Path(c) for c in COMPARE])
        app.session.subscribe(probe)  # the session hands on every engine event, from the training thread
        async with app.run_test(size=(120, 40)):
            while app.session.trainer is None or not app.session.state.ended:
                await asyncio.sleep(0.1)
            app.exit()

    asyncio.run(go())
    return probe.measure(skip)


def bench_throughput(corpus: Path, work: Path, steps: int, pairs: int, options=None) -> dict:
    options = options or tiny_options
    skip = steps // 5  # steady state: the first 20 % of the steps (startup, first paints) are not timed
    headless, tui, busy_h, busy_t = [], [], [], []
    for i in range(pairs):
        # ABBA order: alternate which run goes first, so a machine getting busier (or idler) during the
        # bench does not favour one side (with a fixed order, a falling trend made the app look 17 % slower)
        h_opts = options(corpus, work / f"h{options.__name__}{i}", steps)
        t_opts = options(corpus, work / f"t{options.__name__}{i}", steps)
        if i % 2 == 0:
            h_res = run_headless(h_opts, skip)
            t_res = run_in_app(t_opts, skip)
        else:
            t_res = run_in_app(t_opts, skip)
            h_res = run_headless(h_opts, skip)
        headless.append(h_res[0])
        busy_h.append(h_res[1])
        tui.append(t_res[0])
        busy_t.append(t_res[1])
        print(f"  pair {i + 1}/{pairs}: headless {h_res[0]:,.0f} tok/s (training thread busy {h_res[1]:.0%}), "
              f"in app {t_res[0]:,.0f} tok/s (busy {t_res[1]:.0%})", flush=True)
    h, t = statistics.median(headless), statistics.median(tui)
    # per-pair ratios cancel the slow drift of a shared machine's load better than a ratio of medians
    ratio = statistics.median(b / a for a, b in zip(headless, tui))
    busy = statistics.median(b / a for a, b in zip(busy_h, busy_t))
    return {"headless": h, "tui": t, "ratio": ratio, "headless_all": headless, "tui_all": tui,
            "busy_headless": statistics.median(busy_h), "busy_tui": statistics.median(busy_t), "busy_ratio": busy}


# ------------------------------------------- (1b) real processes, interleaved
def _step_times(metrics: Path) -> list[tuple[float, int]]:
    """(time, tokens_seen) of every step recorded in a run's metrics.jsonl."""
    out = []
    for line in metrics.read_bytes().splitlines():
        if b'"event":"step"' in line:
            rec = json.loads(line)
            out.append((rec["time"], rec["tokens_seen"]))
    return out


def _window_rate(points: list[tuple[float, int]], t0: float, t1: float) -> tuple[int, float]:
    """Tokens trained and seconds between the first and last step that ended inside [t0, t1]."""
    inside = [p for p in points if t0 <= p[0] <= t1]
    if len(inside) < 2:
        return 0, 0.0
    return inside[-1][1] - inside[0][1], inside[-1][0] - inside[0][0]


def bench_interleaved(corpus: Path, work: Path, options, windows: int, seconds: float,
                      control: bool = False) -> dict:
    """The real ``gptmini train`` and the real ``gptmini-tui`` (in a 120x40 pty), run in turns.

    Both processes start on the same config; then only one of them runs at a time (the other is
    frozen with SIGSTOP), in windows of ``seconds``, alternating ABBA, after 5 s of untimed warm-up
    each. A window's first 0.5 s (caches, the app catching up after a freeze) is not timed. Each
    window's tok/s comes from the step time stamps in the run's own metrics.jsonl. Because the two
    alternate every few seconds, a VM whose CPU speed drifts by +-20 % over minutes affects both alike.

    The app's OS threads are counted before and after the windows: until gptmini_tui.driver, Textual
    started two more on every SIGCONT (each new input reader polls ten times a second), which taxed
    the app a little more in every window. With ``control`` the "app" side is a second
    ``gptmini train``: the same protocol between identical programs gives the noise floor.
    """
    import pexpect

    cli, tui = shutil.which("gptmini"), shutil.which("gptmini-tui")
    if cli is None or tui is None:
        raise SystemExit("gptmini / gptmini-tui are not installed (pip install -e .)")
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
    if THREADS:
        env["OMP_NUM_THREADS"] = str(THREADS)
    run = Path(tempfile.mkdtemp(prefix="il-", dir=work))  # fresh run folders: an old metrics.jsonl would
    h_opts = options(corpus, run / "headless", 10_000_000)  # satisfy the start-up wait below at once
    a_opts = options(corpus, run / "app", 10_000_000)
    headless = subprocess.Popen([cli, "train", *cli_args(h_opts)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    stop_reader = threading.Event()
    if control:
        app = subprocess.Popen([cli, "train", *cli_args(a_opts)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    else:
        app = pexpect.spawn(tui, cli_args(a_opts) + compare_args(), env=env, dimensions=(40, 120), timeout=60)
        app.delaybeforesend = None

    def drain() -> None:  # keep reading the pty, or the app blocks on a full terminal
        while not control and not stop_reader.is_set():
            try:
                app.read_nonblocking(1 << 20, timeout=0.1)
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    pids = {"headless": headless.pid, "app": app.pid}
    metrics = {"headless": Path(h_opts["out"]) / "metrics.jsonl", "app": Path(a_opts["out"]) / "metrics.jsonl"}
    spans: dict[str, list[tuple[float, float]]] = {"headless": [], "app": []}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(
                m.exists() and len(_step_times(m)) > 20 for m in metrics.values()):
            time.sleep(0.5)
        for side, m in metrics.items():
            if not (m.exists() and len(_step_times(m)) > 20):
                raise SystemExit(f"bench: the {side} run recorded no steps within 120 s ({m})")
        for pid in pids.values():
            os.kill(pid, signal.SIGSTOP)
        for pid in pids.values():  # warm-up, alone and untimed (the app's first paints and plot builds)
            os.kill(pid, signal.SIGCONT)
            time.sleep(WARMUP)
            os.kill(pid, signal.SIGSTOP)
        app_threads = [_os_threads(app.pid)]  # SIGCONT must not make the app start new threads
        for i in range(windows):
            order = ("headless", "app") if i % 2 == 0 else ("app", "headless")
            for side in order:
                os.kill(pids[side], signal.SIGCONT)
                time.sleep(0.5)
                t0 = time.time()
                time.sleep(seconds)
                t1 = time.time()
                os.kill(pids[side], signal.SIGSTOP)
                spans[side].append((t0, t1))
        app_threads.append(_os_threads(app.pid))
        for pid in pids.values():
            os.kill(pid, signal.SIGCONT)
        time.sleep(1.0)  # let both metrics writers flush
    finally:
        for pid in pids.values():
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        headless.terminate()
        if control:
            app.terminate()
            app.wait(timeout=30)
        else:
            app.terminate(force=True)
        stop_reader.set()
        headless.wait(timeout=30)
        reader.join(timeout=5)
    rates: dict[str, list[float]] = {}
    per: dict[str, list[tuple[int, float]]] = {}
    for side in pids:
        points = _step_times(metrics[side])
        per[side] = [_window_rate(points, t0, t1) for t0, t1 in spans[side]]
        rates[side] = [tok / dt if dt > 0 else float("nan") for tok, dt in per[side]]
    pair_ratios = [a / h for h, a in zip(rates["headless"], rates["app"]) if h == h and a == a and h > 0]
    h_rate, a_rate = _pooled_rate(per["headless"]), _pooled_rate(per["app"])
    lo, hi = _bootstrap_ratio_ci(per["headless"], per["app"])
    return {"headless": h_rate, "tui": a_rate, "ratio": a_rate / h_rate, "ci90": (lo, hi),
            "pair_ratio": statistics.median(pair_ratios) if pair_ratios else float("nan"),
            "headless_all": rates["headless"], "tui_all": rates["app"], "windows": windows, "seconds": seconds,
            "app_threads": tuple(app_threads)}


def _os_threads(pid: int) -> int:
    """How many OS threads a process has (Linux /proc), or -1 where that cannot be read."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return -1


def _pooled_rate(windows: list[tuple[int, float]]) -> float:
    """tokens / seconds over all windows together (a long window weighs more than a short one)."""
    seconds = sum(d for _, d in windows)
    return sum(t for t, _ in windows) / seconds if seconds > 0 else float("nan")


def _bootstrap_ratio_ci(headless: list[tuple[int, float]], app: list[tuple[int, float]],
                        draws: int = 4000, seed: int = 0) -> tuple[float, float]:
    """90 % percentile-bootstrap interval of the pooled app / headless ratio, resampling window pairs.

    Windows i of the two sides ran back to back, so they are resampled together: the machine's
    drift, shared by a pair, stays inside each draw.
    """
    import random

    pairs = [(h, a) for h, a in zip(headless, app) if h[1] > 0 and a[1] > 0]
    if len(pairs) < 4:
        return float("nan"), float("nan")
    rng = random.Random(seed)
    ratios = []
    for _ in range(draws):
        pick = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        h = _pooled_rate([p[0] for p in pick])
        ratios.append(_pooled_rate([p[1] for p in pick]) / h if h > 0 else float("nan"))
    ratios.sort()
    return ratios[int(0.05 * draws)], ratios[int(0.95 * draws) - 1]


def bench_interleaved_repeats(corpus: Path, work: Path, options, windows: int, seconds: float,
                              repeats: int, control: bool = False) -> dict:
    """``bench_interleaved`` with ``repeats`` fresh pairs of processes; the score is the mean of their ratios.

    One pair of processes is not enough on a shared VM: the same protocol with ``gptmini train``
    against itself (``--control``) scattered from 0.89 to 1.25 per pair (bench/README_tui.md), while
    the bootstrap interval of one run only covers the noise between its windows.
    """
    runs = [bench_interleaved(corpus, work, options, windows, seconds, control) for _ in range(max(1, repeats))]
    if len(runs) == 1:
        return dict(runs[0], runs=[runs[0]["ratio"]], sd=float("nan"))
    ratios = [r["ratio"] for r in runs]
    return {"headless": statistics.mean(r["headless"] for r in runs), "tui": statistics.mean(r["tui"] for r in runs),
            "ratio": statistics.mean(ratios), "sd": statistics.stdev(ratios), "runs": ratios,
            "ci90": (float("nan"), float("nan")),
            "pair_ratio": statistics.median(r["pair_ratio"] for r in runs),
            "app_threads": (min(r["app_threads"][0] for r in runs), max(r["app_threads"][1] for r in runs))}


def _il_value(r: dict) -> tuple[str, str]:
    """(what the ratio is, its value) for one model's (1b) result: one pair of processes or several."""
    if len(r.get("runs", [])) > 1:
        return ("mean of the process pairs' ratios (sd; each pair)",
                f"{r['ratio']:.3f} (sd {r['sd']:.3f}; {', '.join(f'{x:.3f}' for x in r['runs'])})")
    return ("ratio, all windows (90% bootstrap interval); median of window pairs",
            f"{r['ratio']:.3f} ({r['ci90'][0]:.3f}-{r['ci90'][1]:.3f}); {r['pair_ratio']:.3f}")


def _print_il(name: str, r: dict) -> None:
    what, value = _il_value(r)
    threads = r.get("app_threads")
    print(f"    {name}: headless {r['headless']:,.0f} tok/s, app {r['tui']:,.0f} tok/s, {what}: {value}"
          + (f"; app OS threads before/after the windows {threads[0]}/{threads[1]}" if threads else ""), flush=True)


def _il_rows(name: str, r: dict, control: dict | None = None) -> list[tuple[str, str, str, str]]:
    what, value = _il_value(r)
    rows = [(f"real processes in turns, {name}: `gptmini train` / `gptmini-tui`",
             f"{r['headless']:,.0f} / {r['tui']:,.0f} tok/s", "", "")]
    if r.get("app_threads"):
        before, after = r["app_threads"]
        rows.append((f"real processes in turns, {name}: app OS threads before / after the windows",
                     f"{before} / {after}", "equal", "PASS" if before == after else "FAIL"))
    rows.append((f"real processes in turns, {name}: {what}", value, ">= 0.95", "PASS" if r["ratio"] >= 0.95 else "FAIL"))
    if control is not None and control.get("runs"):
        c_what, c_value = _il_value(control)
        rows.append((f"control, {name}: `gptmini train` / `gptmini train`, same protocol: {c_what}", c_value,
                     "(noise floor)", ""))
    return rows


# ------------------------------------------------------------- (2)+(3) real pty
def bench_pty(corpus: Path, work: Path, seconds: float, toggles: int, threads: int | None) -> dict:
    import pexpect

    exe = shutil.which("gptmini-tui")
    if exe is None:
        raise SystemExit("gptmini-tui is not installed (pip install -e .)")
    run_dir = work / "pty"
    opts = tiny_options(corpus, run_dir, 10_000_000)
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    child = pexpect.spawn(exe, cli_args(opts) + compare_args(), env=env, dimensions=(40, 120), timeout=60)
    child.delaybeforesend = None  # pexpect sleeps 50 ms before every send by default
    buf = bytearray()

    def pump(timeout: float = 0.05) -> int:
        try:
            data = child.read_nonblocking(1 << 20, timeout=timeout)
        except pexpect.TIMEOUT:
            return 0
        buf.extend(data)
        return len(data)

    def wait_text(text: bytes | tuple[bytes, ...], start: int, limit: float) -> float | None:
        """Read until ``text`` (or any of several) appears after offset ``start``; return the time it did."""
        texts = text if isinstance(text, tuple) else (text,)
        end = time.perf_counter() + limit
        while time.perf_counter() < end:
            if any(buf.find(t, start) >= 0 for t in texts):
                return time.perf_counter()
            pump(0.002)
        return None

    result: dict = {}
    try:
        t_start = time.perf_counter()
        if wait_text(b"RUNNING", 0, 60) is None:
            raise RuntimeError("the app never showed RUNNING")
        metrics = run_dir / "metrics.jsonl"
        # let the first frames and the first steps settle
        settle_end = time.perf_counter() + 3
        while time.perf_counter() < settle_end:
            pump()
        startup_bytes = len(buf)
        result["startup_s"] = time.perf_counter() - t_start
        result["startup_bytes"] = startup_bytes
        # (3) steady-state output
        m0 = _last_step(metrics)
        cpu0 = _thread_cpu(child.pid)
        rss0 = _rss_mb(child.pid)
        b0, c0 = len(buf), time.perf_counter()
        while time.perf_counter() - c0 < seconds:
            pump(0.1)
        b1, c1 = len(buf), time.perf_counter()
        cpu1 = _thread_cpu(child.pid)
        rss1 = _rss_mb(child.pid)
        m1 = _last_step(metrics)
        result["rss_mb"] = (rss0, rss1)
        result["window_steps"] = (m1[0] - m0[0]) if m1 and m0 else 0
        used = sorted((cpu1[t] - cpu0.get(t, 0.0) for t in cpu1), reverse=True)
        # the busiest thread is the training loop; everything else is the UI, its workers and writers
        result["train_thread_cpu"] = used[0] / (c1 - c0) if used else float("nan")
        result["other_threads_cpu"] = sum(used[1:]) / (c1 - c0) if used else float("nan")
        result["bytes_per_s"] = (b1 - b0) / (c1 - c0)
        result["window_s"] = c1 - c0
        result["pty_tok_per_s"] = (m1[1] - m0[1]) / (m1[2] - m0[2]) if m1 and m0 and m1[2] > m0[2] else float("nan")
        # (2) latency: space -> first feedback (PAUSING/RESUMING) and the engine's
        # confirmation (PAUSED/RUNNING); then strategy keys -> label
        lat_state, lat_feedback, lat_strategy = [], [], []

        def press(key: bytes, *texts) -> list[float]:
            """Send ``key`` when the output is quiet; ms until each of ``texts`` appears (inf: never)."""
            while pump(0.02):
                pass
            start = len(buf)
            t0 = time.perf_counter()
            child.send(key)
            seen = [wait_text(text, start, 5) for text in texts]
            return [(t - t0) * 1000 if t else float("inf") for t in seen]

        for i in range(toggles):
            # the feedback frame can be skipped when the engine confirms within the same frame
            for key, first, confirmed in ((b" ", b"PAUS", b"PAUSED"), (b" ", (b"RESUMING", b"RUNNING"), b"RUNNING")):
                feedback, state = press(key, first, confirmed)
                lat_feedback.append(feedback)
                lat_state.append(state)
                pause_end = time.perf_counter() + 0.15
                while time.perf_counter() < pause_end:
                    pump(0.02)
        strategy_keys = [(b"1", b"greedy"), (b"2", b"temperature T="), (b"3", b"top-k k="), (b"4", b"top-p p=")]
        for key, text in strategy_keys * toggles:
            lat_strategy += press(key, text)
        result["lat_state_ms"] = lat_state
        result["lat_feedback_ms"] = lat_feedback
        result["lat_strategy_ms"] = lat_strategy
        # quit (saves first) and make sure the process ends by itself
        t_quit = time.perf_counter()
        child.send("q")
        child.expect(pexpect.EOF, timeout=60)
        result["quit_s"] = time.perf_counter() - t_quit
    finally:
        if child.isalive():
            child.terminate(force=True)
    child.close()
    result["exit_code"] = child.exitstatus
    return result


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_history_memory(n_steps: int = 1_000_000, width: int = 120) -> dict:
    """A long run's worth of Step events through the console's session record and bridge: memory per step,
    and points drawn."""
    import tracemalloc

    from gptmini import events as ev
    from gptmini.history import LossHistory, downsample
    from gptmini.session import RunRecord
    from gptmini_tui.bridge import EngineBridge

    record = RunRecord(LossHistory())
    bridge = EngineBridge(lambda message: None)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(1, n_steps + 1):
        event = ev.Step(step=i, epoch=1 + i // 10_000, batch=1 + i % 10_000, batches_per_epoch=10_000,
                        total_steps=n_steps, tokens_seen=512 * i, loss=2.0 + 1.0 / i, loss_smooth=2.0, lr=1e-3,
                        grad_norm=1.0, tok_per_s=1e4, eta_s=1.0)
        record.handle(event)  # what RunSession does with each event, then its listener, the bridge
        bridge(event)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    h = record.history
    rx, ry, sx, sy = downsample(h.train.x("steps"), h.train.y("loss"), h.train.y("smooth"), width)
    return {"steps": n_steps, "bytes_per_step": grown / n_steps, "total_mb": grown / 1e6,
            "points_drawn": len(rx) + len(sx), "width": width}


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds used so far by each thread of process ``pid`` (Linux /proc)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _last_step(metrics: Path) -> tuple[int, int, float] | None:
    """(step, tokens_seen, time) of the newest step in metrics.jsonl."""
    try:
        data = metrics.read_bytes()
    except FileNotFoundError:
        return None
    for line in reversed(data.splitlines()):
        if b'"event":"step"' in line or b'"event": "step"' in line:
            rec = json.loads(line)
            return rec["step"], rec["tokens_seen"], rec["time"]
    return None


def p95(values: list[float]) -> float:
    vals = sorted(values)
    return vals[min(len(vals) - 1, int(round(0.95 * (len(vals) - 1))))]


def machine() -> str:
    return describe_machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="steady-state output window (60)")
    ap.add_argument("--pairs", type=int, default=8, help="micro-model headless/app pairs (8, ABBA order)")
    ap.add_argument("--steps", type=int, default=3000, help="steps per micro-model throughput run (3000)")
    ap.add_argument("--demo-steps", type=int, default=100, help="steps per cpu-demo throughput run (100)")
    ap.add_argument("--demo-pairs", type=int, default=4,
                    help="cpu-demo headless/app pairs (4; 0 skips the cpu-demo model, in (1b) too)")
    ap.add_argument("--windows", type=int, default=20,
                    help="(1b) windows per side of the interleaved real-process comparison (20; 0 skips)")
    ap.add_argument("--window", type=float, default=4.0, help="(1b) seconds per window (4)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="(1b) fresh pairs of processes per model; >1 scores the mean of their ratios (1)")
    ap.add_argument("--control", action="store_true",
                    help="(1b) also run `gptmini train` against itself the same way: the noise floor (doubles (1b))")
    ap.add_argument("--toggles", type=int, default=15, help="pause/resume round trips for the latency (15)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads, passed to every run as --threads (default: torch's)")
    ap.add_argument("--record", action="store_true", help="append the result table to bench/README_tui.md")
    ap.add_argument("--skip-throughput", action="store_true", help="only the pseudo-terminal part (quick)")
    ap.add_argument("--compare-runs", type=int, default=0, metavar="N",
                    help="every console shows N finished runs of --compare-steps steps beside its own (0)")
    ap.add_argument("--compare-steps", type=int, default=100_000, metavar="N", help="steps per compared run (100k)")
    ap.add_argument("--warmup", type=float, default=5.0,
                    help="(1b) seconds each side runs alone before the windows (5; more with --compare-runs)")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")

    import textual
    import torch

    global THREADS, WARMUP
    THREADS = args.threads
    WARMUP = args.warmup
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="gptmini-bench-tui-"))
    corpus = make_corpus(work / "corpus.txt")
    if args.compare_runs:
        t0 = time.perf_counter()
        COMPARE.append(str(make_compare_runs(work / "compare", args.compare_runs, args.compare_steps)))
        print(f"compare: {args.compare_runs} finished runs of {args.compare_steps:,} steps in {COMPARE[0]} "
              f"(written in {time.perf_counter() - t0:.0f} s); every console shows them all", flush=True)
    print(f"machine: {machine()}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"textual {textual.__version__}", flush=True)
    print("(1) throughput, headless Trainer vs GPTMiniApp (run_test 120x40) ...", flush=True)
    nan = float("nan")
    nothing = {"headless": nan, "tui": nan, "ratio": nan, "headless_all": [], "tui_all": [],
               "busy_headless": nan, "busy_tui": nan, "busy_ratio": nan}
    if args.skip_throughput or not args.pairs:
        thr = demo = nothing
    else:
        print("    micro model (1 layer, d_model 32, context 32, batch 4): Python-bound, the worst case", flush=True)
        thr = bench_throughput(corpus, work, args.steps, args.pairs)
        demo = nothing
        if args.demo_pairs:
            print("    cpu-demo preset (4 layers, d_model 128, context 64, batch 32): the default CPU run", flush=True)
            demo = bench_throughput(corpus, work, args.demo_steps, args.demo_pairs, demo_options)
    ctl_micro = ctl_demo = None
    il_micro = il_demo = {"headless": nan, "tui": nan, "ratio": nan, "pair_ratio": nan, "ci90": (nan, nan),
                          "runs": [], "sd": nan}
    if args.windows and not args.skip_throughput:
        print(f"(1b) real processes in turns, {args.windows} x {args.window:.0f} s each: `gptmini train` vs "
              "`gptmini-tui` in a 120x40 pty ...", flush=True)
        il_micro = bench_interleaved_repeats(corpus, work, tiny_options, args.windows, args.window, args.repeats)
        _print_il("micro", il_micro)
        if args.demo_pairs:
            il_demo = bench_interleaved_repeats(corpus, work, demo_options, args.windows, args.window, args.repeats)
            _print_il("cpu-demo", il_demo)
        if args.control:
            print("(1b) control: the same with `gptmini train` against itself ...", flush=True)
            ctl_micro = bench_interleaved_repeats(corpus, work, tiny_options, args.windows, args.window,
                                                  args.repeats, control=True)
            _print_il("micro, control", ctl_micro)
            ctl_demo = bench_interleaved_repeats(corpus, work, demo_options, args.windows, args.window,
                                                 args.repeats, control=True)
            _print_il("cpu-demo, control", ctl_demo)
    print(f"(2)+(3) real pty 120x40: {args.seconds:.0f} s of training, then latency ...", flush=True)
    pty = bench_pty(corpus, work, args.seconds, args.toggles, args.threads or torch.get_num_threads())
    print("(4) memory: a million steps through the bridge ...", flush=True)
    mem = bench_history_memory()
    shutil.rmtree(work, ignore_errors=True)

    lat_ui = pty["lat_feedback_ms"] + pty["lat_strategy_ms"]
    rows = [
        ("micro model: headless Trainer", f"{thr['headless']:,.0f} tok/s", "", ""),
        ("micro model: in the app (run_test 120x40)", f"{thr['tui']:,.0f} tok/s", "", ""),
        ("micro model: ratio app / headless (median of per-pair ratios)", f"{thr['ratio']:.3f}", ">= 0.95",
         "PASS" if thr["ratio"] >= 0.95 else "FAIL"),
        ("micro model: training thread busy (its CPU time / wall time), headless / app",
         f"{thr['busy_headless']:.1%} / {thr['busy_tui']:.1%}", "", ""),
        ("micro model: busy ratio app / headless (what the UI takes from training)", f"{thr['busy_ratio']:.3f}",
         ">= 0.95", "PASS" if thr["busy_ratio"] >= 0.95 else "FAIL"),
        ("cpu-demo preset: headless / in the app", f"{demo['headless']:,.0f} / {demo['tui']:,.0f} tok/s", "", ""),
        ("cpu-demo preset: ratio app / headless", f"{demo['ratio']:.3f}", ">= 0.95",
         "PASS" if demo["ratio"] >= 0.95 else "FAIL"),
        ("cpu-demo preset: busy ratio app / headless", f"{demo['busy_ratio']:.3f}", ">= 0.95",
         "PASS" if demo["busy_ratio"] >= 0.95 else "FAIL"),
        *_il_rows("micro model", il_micro, ctl_micro),
        *_il_rows("cpu-demo", il_demo, ctl_demo),
        ("micro model in a real pty (unpaired)", f"{pty['pty_tok_per_s']:,.0f} tok/s",
         f"ratio {pty['pty_tok_per_s'] / thr['headless']:.3f}", ""),
        ("CPU in the pty run: training thread / all other threads",
         f"{100 * pty['train_thread_cpu']:.0f}% / {100 * pty['other_threads_cpu']:.1f}% of a core", "", ""),
        ("key -> screen p95, 1-4 -> strategy label", f"{p95(pty['lat_strategy_ms']):.1f} ms", "", ""),
        ("key -> screen p95, space -> PAUSING/RESUMING", f"{p95(pty['lat_feedback_ms']):.1f} ms", "", ""),
        ("key -> screen p95, both of the above", f"{p95(lat_ui):.1f} ms", "<= 50 ms",
         "PASS" if p95(lat_ui) <= 50 else "FAIL"),
        ("key -> screen p95, space -> engine-confirmed PAUSED/RUNNING", f"{p95(pty['lat_state_ms']):.1f} ms",
         "(info)", ""),
        (f"terminal output, steady training ({pty['window_s']:.0f} s)", f"{pty['bytes_per_s'] / 1024:.2f} KB/s",
         "<= 20 KB/s", "PASS" if pty["bytes_per_s"] <= 20 * 1024 else "FAIL"),
        ("startup: first paint + 3 s", f"{pty['startup_bytes'] / 1024:.1f} KB in {pty['startup_s']:.1f} s", "", ""),
        ("quit (save + stop + exit)", f"{pty['quit_s']:.2f} s, exit code {pty['exit_code']}", "", ""),
        (f"memory: app RSS at the start / end of the {pty['window_s']:.0f} s window ({pty['window_steps']:,} steps)",
         f"{pty['rss_mb'][0]:.0f} / {pty['rss_mb'][1]:.0f} MB", "", ""),
        (f"memory: history of {mem['steps']:,} steps through the bridge (tracemalloc)",
         f"{mem['bytes_per_step']:.1f} bytes/step = {mem['total_mb']:.1f} MB", "compact", ""),
        (f"plot: points drawn from {mem['steps']:,} steps at width {mem['width']}", f"{mem['points_drawn']}",
         f"<= {4 * mem['width']}", "PASS" if mem["points_drawn"] <= 4 * mem["width"] else "FAIL"),
    ]
    table = ["| measurement | result | target | |", "| --- | --- | --- | --- |"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows if "nan" not in b]
    detail = (
        f"micro headless runs: {', '.join(f'{x:,.0f}' for x in thr['headless_all'])} tok/s; "
        f"app runs: {', '.join(f'{x:,.0f}' for x in thr['tui_all'])} tok/s; "
        f"cpu-demo headless: {', '.join(f'{x:,.0f}' for x in demo['headless_all'])}; "
        f"app: {', '.join(f'{x:,.0f}' for x in demo['tui_all'])} tok/s; "
        f"latency samples: {len(pty['lat_feedback_ms'])} space + {len(pty['lat_strategy_ms'])} strategy keys, "
        f"median {statistics.median(lat_ui):.1f} ms, max {max(lat_ui):.1f} ms; engine-confirmed pause/resume "
        f"median {statistics.median(pty['lat_state_ms']):.1f} ms"
    )
    print()
    print("\n".join(table))
    print(detail)
    if args.record:
        stamp = time.strftime("%Y-%m-%d %H:%M")
        with (HERE / "README_tui.md").open("a") as fh:
            fh.write(f"\n### {stamp} — {machine()}\n\n"
                     f"torch {torch.__version__} ({torch.get_num_threads()} threads), textual {textual.__version__}; "
                     f"`python bench/bench_tui.py {' '.join(sys.argv[1:])}`\n\n")
            fh.write("\n".join(table) + "\n\n" + detail + "\n")
    ok = thr["ratio"] >= 0.95 and p95(lat_ui) <= 50 and pty["bytes_per_s"] <= 20 * 1024
    for r in (demo, il_micro, il_demo):
        ok = ok and (r["ratio"] != r["ratio"] or r["ratio"] >= 0.95)  # nan: not measured
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

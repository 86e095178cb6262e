"""One-call GPU check: correctness, then speed, then one summary table.

Runs on a fresh machine with PyTorch and no network (``bench/gpu_check.sh``
sets it up). With ``--device cpu --quick`` the same code runs small on a CPU,
which is how it is tested before GPU time is spent.

    python bench/gpu_check.py --out results/  [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import describe as describe_machine  # noqa: E402 - bench/_machine.py

from gptmini import events as ev  # noqa: E402
from gptmini.model.config import ModelConfig
from gptmini.model.gpt import GPT  # noqa: E402
from gptmini.presets import preset_config  # noqa: E402
from gptmini.train.engine import Trainer  # noqa: E402
from gptmini.train_config import TrainConfig  # noqa: E402

ROWS: list[tuple[str, str, str]] = []  # (check, result, note)
T0 = time.time()


def row(check: str, result: str, note: str = "") -> None:
    ROWS.append((check, result, note))
    print(f"[{time.time() - T0:6.1f}s] {check}: {result} {note}", flush=True)


def section(fn):
    def wrapped(*a, **k):
        try:
            return fn(*a, **k)
        except Exception as exc:  # one failing section must not hide the others
            row(fn.__name__, "FAILED", f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
            return None
    return wrapped


def corpus_file(tmp: Path, repeat: int) -> Path:
    from gptmini.text.corpus import load_corpus

    text = load_corpus().text
    path = tmp / f"python-reference-x{repeat}.txt"
    if not path.exists():
        path.write_text("\n\n".join([text] * repeat))
    return path


@section
def matmul_peak(device: str, quick: bool) -> float | None:
    if device != "cuda":
        row("bf16 matmul peak", "skipped", "(CPU)")
        return None
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        a @ b
    end.record()
    end.synchronize()
    tflops = 2 * n**3 * 10 / (start.elapsed_time(end) / 1e3) / 1e12
    row("bf16 matmul 8192^3", f"{tflops:.0f} TFLOP/s")
    return tflops * 1e12


@section
def forward_backward_matches_cpu(device: str, quick: bool) -> None:
    if device == "cpu":
        row("CUDA vs CPU forward/backward", "skipped", "(CPU run)")
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=2000, context_length=64, n_layers=2, n_heads=4, d_model=128)
    cpu = GPT(cfg)
    gpu = GPT(cfg).to("cuda")
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randint(0, 2000, (4, 64))
    y = torch.randint(0, 2000, (4, 64))
    _, lc = cpu(x, y)
    lc.backward()
    _, lg = gpu(x.cuda(), y.cuda())
    lg.backward()
    dl = abs(lc.item() - lg.item())
    dg = max((pc.grad - pg.grad.cpu()).abs().max().item() for pc, pg in zip(cpu.parameters(), gpu.parameters()))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        _, lb = gpu(x.cuda(), y.cuda())
    ok = dl < 1e-4 and dg < 1e-4 and abs(lb.item() - lc.item()) < 2e-2
    row("CUDA fp32 vs CPU fp32", "ok" if ok else "MISMATCH",
        f"|dloss| {dl:.2e}, max|dgrad| {dg:.2e}, bf16 |dloss| {abs(lb.item() - lc.item()):.2e}")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def run_engine(cfg: TrainConfig, warm_steps: int) -> dict:
    """Run the real engine; measure tokens/s between the warm-up and the last step."""
    marks: dict[int, float] = {}
    info: dict = {}

    def on(e):
        if isinstance(e, ev.Step):
            marks[e.step] = time.perf_counter()
            info["engine_tok_s"] = e.tok_per_s
            info["mfu"] = e.mfu
            info["mem"] = e.gpu_mem_gb
            info["loss"] = e.loss
        elif isinstance(e, ev.RunStarted):
            info["tokens_per_step"] = e.batch_size * e.context_length * e.grad_accum * e.world_size
            info["t_setup"] = time.perf_counter()
        elif isinstance(e, ev.Error):
            info["error"] = e.message

    trainer = Trainer(cfg)
    trainer.subscribe(on)
    t0 = time.perf_counter()
    finished = trainer.run()
    info["finished"] = finished.reason
    info["steps"] = finished.step
    if "error" in info:
        raise RuntimeError(info["error"])
    last = max(marks)
    first = min(s for s in marks if s >= warm_steps)
    info["tok_s"] = (last - first) * info["tokens_per_step"] / (marks[last] - marks[first])
    info["warmup_s"] = marks[first] - t0
    info["trainer"] = trainer
    return info


@section
def checkpoints_cross_device(device: str, quick: bool, tmp: Path) -> None:
    from gptmini.ckpt.state import load_for_inference

    if device == "cpu":
        row("checkpoint GPU<->CPU", "skipped", "(CPU run)")
        return
    small = dict(data=[str(corpus_file(tmp, 1))], n_layers=2, n_heads=4, d_model=128, context=64, batch_size=8,
                 eval_interval=1000, eval_batches=2, sample_tokens=8, seed=3, warmup_steps=2, lr_decay_steps=12)
    # GPU -> CPU: train on CUDA, load on CPU, same logits
    info = run_engine(TrainConfig(**small, max_steps=6, device="cuda", out=str(tmp / "gpu-run"), compile=False), 0)
    gpu_model = info["trainer"].model.float().eval()
    cpu_model, tok, _ = load_for_inference(tmp / "gpu-run", device="cpu")
    x = torch.randint(0, tok.vocab_size, (2, 32))
    with torch.no_grad():
        d = (gpu_model(x.cuda())[0].cpu() - cpu_model(x)[0]).abs().max().item()
    row("checkpoint saved on GPU loads on CPU", "ok" if d < 1e-3 else "MISMATCH", f"max|dlogits| {d:.1e}")
    # CPU -> GPU: train 6 on CPU, resume on CUDA to 12: the loss curve continues
    run_engine(TrainConfig(**small, max_steps=6, device="cpu", out=str(tmp / "cpu-run")), 0)
    losses: dict[int, float] = {}
    tr = Trainer(TrainConfig(**{k: v for k, v in small.items() if k != "data"}, resume=str(tmp / "cpu-run"),
                             max_steps=12, device="cuda", compile=False,
                             explicit=("max_steps", "device", "compile")))
    tr.subscribe(lambda e: losses.__setitem__(e.step, e.loss) if isinstance(e, ev.Step) else None)
    tr.run()
    ref: dict[int, float] = {}
    tr2 = Trainer(TrainConfig(**small, max_steps=12, device="cpu", out=str(tmp / "cpu-ref")))
    tr2.subscribe(lambda e: ref.__setitem__(e.step, e.loss) if isinstance(e, ev.Step) else None)
    tr2.run()
    ok = sorted(losses) == list(range(7, 13)) and all(abs(losses[s] - ref[s]) < 2e-2 for s in losses)
    row("checkpoint saved on CPU resumes on GPU", "ok" if ok else "MISMATCH",
        f"steps {min(losses)}-{max(losses)}, max|dloss| vs CPU-only {max(abs(losses[s] - ref[s]) for s in losses):.1e}")


@section
def sampling(device: str, quick: bool) -> None:
    from gptmini.sample.sampler import Sampler, SamplingSettings, generate_uncached
    from gptmini.text.tokenizer import build_tokenizer

    tok = build_tokenizer("gpt2")
    torch.manual_seed(0)
    cfg = preset_config("gpt2-124m", n_layers=2 if quick else 12)
    model = GPT(cfg).to(device).eval()
    sampler = Sampler(model, tok)
    prompt = "Every effort moves you"
    n = 20 if quick else 200
    settings = SamplingSettings(strategy="greedy", max_new_tokens=n)
    cached = [t.token_id for t in sampler.stream(prompt, settings)]
    plain = generate_uncached(model, tok.encode(prompt), 50 if not quick else 10, settings)
    k = min(len(plain), len(cached))
    row("sampling: cached == uncached greedy", "ok" if cached[:k] == plain[:k] else "MISMATCH", f"{k} tokens")
    for _ in range(2):  # warm-up, then timed
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        first = None
        count = 0
        for _tok in sampler.stream(prompt, settings):
            count += 1
            if first is None:
                first = time.perf_counter() - t0
        if device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    row(f"sampling {cfg.n_layers}-layer gpt2-124m, batch 1", f"{count / dt:.0f} tok/s",
        f"{count} new tokens, first token after {first * 1e3:.1f} ms")


@section
def speed(device: str, quick: bool, tmp: Path, batch: int, peak: float | None) -> dict | None:
    steps = 6 if quick else (80 if batch == 16 else 50)
    warm = 2 if quick else 15
    data = corpus_file(tmp, 2 if quick else 24)
    over = dict(n_layers=2, d_model=128, n_heads=4, context=128) if quick else {}
    cfg = TrainConfig(data=[str(data)], preset="gpt2-124m", tokenizer="gpt2", batch_size=batch, max_steps=steps,
                      eval_interval=10_000, eval_batches=2, sample_tokens=8, save_interval=10_000, device=device,
                      out=str(tmp / f"speed-b{batch}"), warmup_steps=10, **over)
    info = run_engine(cfg, warm)
    trainer = info.pop("trainer")
    flops_tok = trainer.model.flops_per_token()
    note = f"{steps} steps, warm-up {warm} ({info['warmup_s']:.0f}s incl. compile), engine's own {info['engine_tok_s']:,.0f}"
    if device == "cuda":
        ds = flops_tok * info["tok_s"] / 989e12
        note += f"; MFU {ds:.1%} of 989 TFLOP/s datasheet"
        if peak:
            note += f", {flops_tok * info['tok_s'] / peak:.1%} of measured {peak / 1e12:.0f}"
        note += f"; peak mem {info['mem']:.1f} GB"
    name = "gpt2-124m" if not quick else "small (quick)"
    row(f"train {name} T={cfg.context or 1024} batch {batch}", f"{info['tok_s']:,.0f} tok/s", note)
    return info


@section
def tui_vs_cli(device: str, quick: bool, tmp: Path, cli_tok_s: float | None) -> None:
    try:
        import textual  # noqa: F401
    except ImportError:
        row("TUI vs CLI throughput", "skipped", "(textual not installed here)")
        return
    import asyncio

    from gptmini_tui.app import GPTMiniApp

    steps = 6 if quick else 60
    warm = 2 if quick else 15
    data = corpus_file(tmp, 2 if quick else 24)
    over = dict(n_layers=2, d_model=128, n_heads=4, context=128) if quick else {}
    cfg = TrainConfig(data=[str(data)], preset="gpt2-124m", tokenizer="gpt2", batch_size=16, max_steps=steps,
                      eval_interval=10_000, eval_batches=2, sample_tokens=8, save_interval=10_000, device=device,
                      out=str(tmp / "tui-run"), warmup_steps=10, **over)
    marks: dict[int, float] = {}

    async def drive():
        app = GPTMiniApp(cfg)
        app.session.subscribe(lambda e: marks.__setitem__(e.step, time.perf_counter())
                              if isinstance(e, ev.Step) else None)
        async with app.run_test(size=(120, 40)) as pilot:
            while app.session.trainer is None or not app.session.state.ended:
                await pilot.pause(0.2)

    asyncio.run(drive())
    last = max(marks)
    first = min(s for s in marks if s >= warm)
    tps = 16 * (cfg.context or 1024)
    tok_s = (last - first) * tps / (marks[last] - marks[first])
    ratio = f", {tok_s / cli_tok_s:.2f}x the CLI" if cli_tok_s else ""
    row("train inside gptmini-tui, batch 16", f"{tok_s:,.0f} tok/s", f"{steps} steps{ratio}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GPTMINI_CACHE_DIR", tempfile.mkdtemp(prefix="gptmini-cache-"))
    card = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    header = (f"GPTMini GPU check — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
              f"device: {card}; torch {torch.__version__}; python {platform.python_version()}\n"
              f"host: {describe_machine()}")
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        peak = matmul_peak(args.device, args.quick)
        forward_backward_matches_cpu(args.device, args.quick)
        checkpoints_cross_device(args.device, args.quick, tmp)
        sampling(args.device, args.quick)
        b16 = speed(args.device, args.quick, tmp, 16, peak)
        speed(args.device, args.quick, tmp, 32, peak)
        tui_vs_cli(args.device, args.quick, tmp, b16["tok_s"] if b16 else None)
    width = max(len(r[0]) for r in ROWS)
    table = "\n".join(f"{c:<{width}}  {r:>16}  {n}" for c, r, n in ROWS)
    text = f"{header}\n\n{table}\n\ntotal time {time.time() - T0:.0f}s\n"
    print("\n" + text)
    (out / "gpu_check.txt").write_text(text)
    (out / "gpu_check.json").write_text(json.dumps({"header": header, "rows": ROWS}, indent=1))
    return 1 if any(r[1] in ("FAILED", "MISMATCH") for r in ROWS) else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: tokenise a ~100 MB corpus into the token cache (gpt2), measuring speed and memory.

    python bench/bench_data.py [--mb 100]

Builds the corpus by repeating ../shared/data/tinyshakespeare.txt in a temporary
folder, then runs each measurement in a fresh child process so ``ru_maxrss`` (peak
resident memory) belongs to that work alone:

  imports     - import gptmini.data / corpus / tokenizer (numpy, tiktoken; no torch) and nothing else
  tokenizer   - imports + build the GPT-2 encoding
  build       - load_corpus (one validating pass) + TokenData.build (cache miss), as
                ``gptmini prepare`` does it: torch is never imported
  cached      - the same again (cache hit: hash the files, memmap the tokens)
  build+torch - ``build`` in a process that imported torch first, as the tokenisation at the
                start of ``gptmini train`` / ``gptmini-tui`` runs

Target: peak RSS below 3x the token array. Reported both as the total peak RSS of the
process and as the increment of ``build`` over ``tokenizer``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import describe as describe_machine  # noqa: E402 - bench/_machine.py

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(mode: str, data: str) -> None:
    """Run one measurement and print a JSON line."""
    t0 = time.perf_counter()
    if mode == "build+torch":
        import torch  # noqa: F401
    from gptmini.data.tokens import TokenData
    from gptmini.text.corpus import load_corpus
    from gptmini.text.tokenizer import build_tokenizer, gpt2_encoding

    out: dict = {"mode": mode, "import_s": time.perf_counter() - t0}
    if mode != "imports":
        t0 = time.perf_counter()
        gpt2_encoding()
        out["tokenizer_s"] = time.perf_counter() - t0
    if mode in ("build", "cached", "build+torch"):
        t0 = time.perf_counter()
        corpus = load_corpus([data])
        out["load_s"] = time.perf_counter() - t0
        t0, cpu0 = time.perf_counter(), _cpu_s()
        tokens = TokenData.build(corpus, build_tokenizer("gpt2"))
        out["build_s"], out["build_cpu_s"] = time.perf_counter() - t0, _cpu_s() - cpu0
        out.update(
            from_cache=tokens.from_cache,
            n_bytes=corpus.n_bytes,
            n_tokens=tokens.n_tokens,
            token_bytes=tokens.n_tokens * tokens.dtype.itemsize,
        )
    out["torch_imported"] = "torch" in sys.modules
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps(out))


def run_child(mode: str, data: Path, cache: Path) -> dict:
    env = dict(os.environ, GPTMINI_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, __file__, "--child", mode, "--data", str(data)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_corpus(folder: Path, mb: float) -> Path:
    piece = SOURCE.read_bytes()
    path = folder / "big.txt"
    with open(path, "wb") as f:
        for _ in range(max(1, round(mb * 1e6 / len(piece)))):
            f.write(piece)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="corpus size in MB (default 100)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data)
        return
    if not SOURCE.is_file():
        print(f"skipped: {SOURCE} is absent (the benchmark repeats it to make its corpus)")
        return
    with tempfile.TemporaryDirectory(prefix="gptmini-bench-") as tmp:
        data = make_corpus(Path(tmp), args.mb)
        cache = Path(tmp) / "cache"
        results = {mode: run_child(mode, data, cache) for mode in ("imports", "tokenizer", "build", "cached")}
        results["build+torch"] = run_child("build+torch", data, Path(tmp) / "cache-torch")  # a cache miss again
    report(results)


def report(r: dict) -> None:
    build, cached = r["build"], r["cached"]
    mb = build["n_bytes"] / 1e6
    token_mb = build["token_bytes"] / 1e6
    base = r["tokenizer"]["maxrss_mb"]
    increment = build["maxrss_mb"] - base
    bits = build["token_bytes"] // build["n_tokens"] * 8
    load = os.getloadavg()[0]
    print(f"machine: {describe_machine()} (load {load:.1f} at the end)")
    print(f"corpus: {mb:.1f} MB, {build['n_tokens']:,} gpt2 tokens, token array {token_mb:.1f} MB ({bits}-bit)")
    print()
    rows = [
        ("imports", r["imports"]["maxrss_mb"], r["imports"]["import_s"],
         f"import gptmini.data (numpy, tiktoken; torch imported: {r['imports']['torch_imported']})"),
        ("tokenizer", base, r["tokenizer"]["tokenizer_s"], "+ build the GPT-2 encoding"),
        (
            "build",
            build["maxrss_mb"],
            build["load_s"] + build["build_s"],
            f"load {build['load_s']:.2f} s + tokenise {build['build_s']:.2f} s = {mb / build['build_s']:.1f} MB/s "
            f"({mb / build['build_cpu_s']:.1f} MB per CPU-second)",
        ),
        (
            "cached",
            cached["maxrss_mb"],
            cached["load_s"] + cached["build_s"],
            f"load {cached['load_s']:.2f} s + open cache {cached['build_s']:.3f} s (from_cache={cached['from_cache']})",
        ),
        (
            "build+torch",
            r["build+torch"]["maxrss_mb"],
            r["build+torch"]["load_s"] + r["build+torch"]["build_s"],
            f"import torch first (as gptmini train): tokenise {r['build+torch']['build_s']:.2f} s",
        ),
    ]
    print(f"{'run':<12} {'peak RSS MB':>12} {'time s':>8}  notes")
    for name, rss, seconds, note in rows:
        print(f"{name:<12} {rss:>12.0f} {seconds:>8.2f}  {note}")
    print()
    print(
        f"peak RSS increment of build over tokenizer: {increment:.0f} MB = "
        f"{increment / token_mb:.2f}x the token array (target < 3x)"
    )
    print(f"total peak RSS of build (no torch, as gptmini prepare): {build['maxrss_mb']:.0f} MB = "
          f"{build['maxrss_mb'] / token_mb:.2f}x the token array (target < 3x)")
    bt = r["build+torch"]["maxrss_mb"]
    print(f"total peak RSS of build+torch (as gptmini train): {bt:.0f} MB = {bt / token_mb:.2f}x the token array")


if __name__ == "__main__":
    main()

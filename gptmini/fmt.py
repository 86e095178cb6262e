"""Small formatting helpers shared by the widgets (pure functions)."""

from __future__ import annotations

import math
import time


def human_count(n: float | int | None, digits: int = 2) -> str:
    """1234 -> 1.23k, 1_500_000 -> 1.50M."""
    if n is None:
        return "–"
    n = float(n)
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.{digits}f}{suffix}"
    return f"{n:.0f}"


def human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for div, suffix in ((1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "kB")):
        if n >= div:
            return f"{n / div:.1f} {suffix}"
    return f"{int(n)} B"


def duration(seconds: float | None) -> str:
    """Seconds -> '42s', '4m12s', '3h05m', '2d04h'."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def age(then: float, now: float | None = None) -> str:
    now = time.time() if now is None else now
    return duration(max(0.0, now - then))


def loss(value: float | None) -> str:
    if value is None:
        return "–"
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf"
    return f"{value:.3f}"


def perplexity(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    try:
        ppl = math.exp(value)
    except OverflowError:
        return "inf"
    if ppl >= 1e5:
        return f"{ppl:.2e}"
    return f"{ppl:.2f}" if ppl < 100 else f"{ppl:.0f}"


def clock(t: float) -> str:
    """Wall-clock time HH:MM:SS (local)."""
    return time.strftime("%H:%M:%S", time.localtime(t))


def lr(value: float | None) -> str:
    """3e-4 style: short enough for the narrow counters panel."""
    if value is None:
        return "–"
    if value == 0:
        return "0"
    mant, exp = f"{value:.1e}".split("e")
    return f"{mant}e{int(exp)}"


def token_repr(text: str) -> str:
    """Show a token so whitespace and control characters are visible."""
    out = (
        text.replace("\\", "\\\\")
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("\r", "\\r")
    )
    if out.startswith(" "):
        out = "␣" + out[1:]
    if out == "":
        out = "∅"
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in out)

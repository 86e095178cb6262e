"""Helpers shared by the TUI tests (a uniquely named module, importable from the tests).

Nothing here synchronises by sleeping: a test sends a key or a request, then waits for what it
should cause (``wait_until``, with a generous timeout that only a broken console reaches). The
polling interval is how often the condition is checked while the app runs, not a guess at how
long something takes.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from pathlib import Path

from textual import events

# What each non-character key name types (None: types nothing), as a terminal would send it.
_KEY_CHARS = {
    "space": " ", "question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]",
    "minus": "-", "plus": "+", "equals_sign": "=", "slash": "/", "enter": "\r", "tab": "\t",
    "escape": None, "ctrl+s": None, "ctrl+c": None, "ctrl+p": None, "ctrl+q": None,
}


async def wait_until(pilot, predicate, timeout: float = 30.0, what: str = "condition") -> None:
    """Let the app run until ``predicate()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


async def press(pilot, *keys: str, until, what: str, timeout: float = 30.0) -> None:
    """Send ``keys`` to the app in order, then wait until ``until()`` holds (what the keys should cause).

    ``Pilot.press`` instead waits for the whole *process* to go idle after each key, which never
    happens while a training thread is busy.
    """
    for key in keys:
        char = _KEY_CHARS[key] if key in _KEY_CHARS else key
        pilot.app.post_message(events.Key(key, char))
    await wait_until(pilot, until, timeout, what)


def current_step(app) -> int:
    step = app.session.record.latest_step
    return step.step if step is not None else 0


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).glob("step-*") if (p / "manifest.json").is_file())


def record_notifications(app) -> list[tuple[str, str]]:
    """(severity, message) of every notification the app shows from now on."""
    seen: list[tuple[str, str]] = []
    notify = app.notify

    def recording(message, *args, **kwargs):
        seen.append((kwargs.get("severity", "information"), str(message)))
        return notify(message, *args, **kwargs)

    app.notify = recording
    return seen


T0 = 1_700_000_000.0  # fixed wall clock for the static run


def write_static_run(run_dir, steps: int = 240, *, floor: float = 1.6, finished: bool = False,
                     options: dict | None = None) -> None:
    """A plausible run with fixed time stamps: loss curve with noise, evals, a sample, paused at the end
    (or ``finished``), and a ``config.json`` with ``options`` (train options) when given."""
    from gptmini import events as ev

    run_dir.mkdir(parents=True, exist_ok=True)
    if options is not None:
        model = {"n_layers": 4, "n_heads": 4, "d_model": 128, "context_length": 128, "vocab_size": 65}
        (run_dir / "config.json").write_text(json.dumps({
            "train": {"preset": "cpu-demo", **options}, "model": model, "tokenizer": {"name": "char"},
            "resolved": {"corpus": "tiny-shakespeare"}}))
    bpe = 80
    events: list[ev.Event] = [
        ev.StateChanged(state="starting", step=0, time=T0),
        ev.RunStarted(
            run_name="demo", run_dir=str(run_dir), time=T0 + 1,
            model_config={"n_layers": 4, "n_heads": 4, "d_model": 128, "context_length": 128, "vocab_size": 65},
            n_params=812_160, corpus="tiny-shakespeare", corpus_bytes=1_115_394, train_tokens=1_003_854,
            val_tokens=111_540, tokenizer="char", vocab_size=65, device="cpu", dtype="float32", batch_size=16,
            grad_accum=1, world_size=1, context_length=128, epochs=3, batches_per_epoch=bpe, total_steps=3 * bpe,
            start_step=0,
        ),
        ev.StateChanged(state="running", step=0, time=T0 + 2),
    ]
    smooth = None
    for s in range(1, steps + 1):
        loss = floor + 2.6 * math.exp(-s / 45) + 0.12 * math.sin(s * 1.7) * math.cos(s * 0.31)
        smooth = loss if smooth is None else 0.9 * smooth + 0.1 * loss
        epoch, batch = (s - 1) // bpe + 1, (s - 1) % bpe + 1
        events.append(ev.Step(
            step=s, epoch=epoch, batch=batch, batches_per_epoch=bpe, total_steps=3 * bpe,
            tokens_seen=s * 2048, loss=loss, loss_smooth=smooth, lr=1e-3 * min(1.0, s / 12), grad_norm=0.8,
            tok_per_s=20480.0, eta_s=(3 * bpe - s) * 0.1, time=T0 + 2 + 0.1 * s,
        ))
        if s % 60 == 0:
            val = floor + 0.1 + 2.6 * math.exp(-s / 50)
            events.append(ev.Eval(step=s, epoch=epoch, tokens_seen=s * 2048, val_loss=val, val_ppl=math.exp(val),
                                  train_loss=smooth, best=True, time=T0 + 2.05 + 0.1 * s))
            events.append(ev.Sample(step=s, prompt="ROMEO:", text=" the king is not the", time=T0 + 2.06 + 0.1 * s))
    end = T0 + 3 + 0.1 * steps
    if finished:
        events.append(ev.StateChanged(state="finished", step=steps, time=end))
        events.append(ev.Finished(step=steps, reason="completed", loss=smooth, val_loss=None, elapsed_s=end - T0,
                                  tokens_seen=steps * 2048, time=end))
    else:
        events.append(ev.StateChanged(state="paused", step=steps, time=end))
    with (run_dir / "metrics.jsonl").open("w") as fh:
        for e in events:
            fh.write(json.dumps(e.to_record()) + "\n")


_SVG_TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" '
                       r'clip-path="url\(#[\w-]+-line-(\d+)\)">([^<]*)</text>')


def svg_lines(svg: str) -> list[str]:
    """The text of a Textual screenshot (``App.export_screenshot``, or a snapshot's SVG), one string a row.

    Rich writes each run of same-styled text at ``x = column * char_width``; blanks are not written.
    """
    char_width = 12.2  # rich's export_svg: a character is 20 x 0.61 wide
    rows: dict[int, list[str]] = {}
    for x, row, text in _SVG_TEXT.findall(svg):
        line = rows.setdefault(int(row), [])
        col, text = round(float(x) / char_width), html.unescape(text).replace("\xa0", " ")
        line.extend(" " * (col + len(text) - len(line)))
        line[col:col + len(text)] = text
    return ["".join(rows.get(r, [])).rstrip() for r in range(max(rows, default=-1) + 1)]


def screen_lines(app) -> list[str]:
    """What the app's screen shows now, as text rows."""
    return svg_lines(app.export_screenshot())

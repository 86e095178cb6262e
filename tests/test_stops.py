"""Stop requests in every phase of a run, and last words that say exactly what exists.

The commands run in a child process with a gate injected (``GATED``): tokenising, or one training step,
waits at a gate folder until the test opens it, so each test is about the stop, not about timing.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from gptmini import events as ev
from gptmini.ckpt.writer import RunSaves
from gptmini.model.gpt import GPT
from gptmini.train.engine import Trainer
from tests.helpers import Recorder, start_in_thread, tiny_config

TINY = ["--n-layers", "1", "--n-heads", "2", "--d-model", "32", "--context", "32", "--batch-size", "4",
        "--eval-batches", "2", "--sample-tokens", "4", "--device", "cpu"]

GATED = r"""
import os, sys, time, pathlib
gate = pathlib.Path(os.environ["GATE"])

def wait(where):
    (gate / where).touch()
    while not (gate / "open").exists():
        time.sleep(0.01)

if os.environ["GATE_AT"] == "tokenising":  # every chunk after the first waits: tokenising in progress
    from gptmini.text.tokenizer import CharTokenizer
    encode = CharTokenizer._encode_array
    def gated_encode(self, text, offset):
        if offset > 0:
            wait("tokenising")
        return encode(self, text, offset)
    CharTokenizer._encode_array = gated_encode
else:  # training step GATE_AT waits in its forward pass (a compilation, a long step)
    from gptmini.model.gpt import GPT
    forward, calls = GPT.forward, [0]
    def gated_forward(self, *args, **kwargs):
        if self.training:
            calls[0] += 1
            if calls[0] == int(os.environ["GATE_AT"]):
                wait("stepping")
        return forward(self, *args, **kwargs)
    GPT.forward = gated_forward
if os.environ.get("UNTOLD_SAVES"):  # the training thread never gets to tell the saves that landed
    from gptmini.ckpt.writer import RunSaves
    RunSaves.drain = lambda self: None
from gptmini.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Lines:
    """A stream's lines, read on a thread, so that a test can wait for one."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            left = deadline - time.monotonic()
            assert left > 0, f"no line with {text!r} in {self.lines}"
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, f"the stream ended without {text!r}: {self.lines}"
            self.lines.append(line)

    def rest(self) -> str:
        while (line := self._queue.get(timeout=60)) is not None:
            self.lines.append(line)
        return "".join(self.lines)


class Gated:
    """A gptmini command in a child process whose tokenising or N-th training step waits at a gate."""

    def __init__(self, tmp_path: Path, at: str, *args: str, **env: str) -> None:
        self.gate = tmp_path / "gate"
        self.gate.mkdir()
        self.cache = tmp_path / "cache"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", GATED, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "GATE": str(self.gate), "GATE_AT": at, "GPTMINI_CACHE_DIR": str(self.cache),
                            **env})
        self.out, self.err = Lines(self.proc.stdout), Lines(self.proc.stderr)

    def wait_at_gate(self, where: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not (self.gate / where).exists():
            assert self.proc.poll() is None, self.err.rest()
            assert time.monotonic() < deadline, f"never reached the gate ({where})"
            time.sleep(0.05)

    def interrupt(self, then_wait_for: str) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.err.wait_for(then_wait_for)

    def open_gate(self) -> None:
        (self.gate / "open").touch()

    def finish(self) -> tuple[int, str, str]:
        try:
            rc = self.proc.wait(timeout=120)
        finally:
            self.open_gate()
            if self.proc.poll() is None:
                self.proc.kill()
        return rc, self.out.rest(), self.err.rest()


def every_file(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def big_text(tmp_path) -> Path:
    """Three chunks of the char tokenizer's million characters: the second waits at the gate."""
    path = tmp_path / "big.txt"
    path.write_text("every effort moves you forward\n" * 80_000)
    return path


def test_ctrl_c_while_tokenising_stops_at_once_and_says_nothing_was_saved(tmp_path, big_text):
    run = Gated(tmp_path, "tokenising", "train", "--data", str(big_text), "--tokenizer", "char", *TINY,
                "--out", str(tmp_path / "run"))
    run.wait_at_gate("tokenising")
    run.interrupt(then_wait_for="stopping before training begins")
    run.open_gate()
    rc, out, err = run.finish()
    assert rc == 0, err
    assert "stopped before training began; nothing was saved" in out
    assert "checkpoint" not in out and "resume with" not in out
    assert not (tmp_path / "run").exists()
    assert every_file(run.cache) == []  # no token cache, no temporary file


def test_a_second_ctrl_c_while_tokenising_leaves_no_temporary_file(tmp_path, big_text):
    run = Gated(tmp_path, "tokenising", "train", "--data", str(big_text), "--tokenizer", "char", *TINY,
                "--out", str(tmp_path / "run"))
    run.wait_at_gate("tokenising")
    assert any(p.name.endswith(".tmp") for p in (run.cache / "tokens").iterdir())  # the write is under way
    run.interrupt(then_wait_for="stopping before training begins")
    run.proc.send_signal(signal.SIGINT)
    rc, out, err = run.finish()
    assert rc == 128 + signal.SIGINT
    assert "nothing was saved" in err and "resume with" not in out + err
    assert every_file(run.cache) == []


def test_prepare_stops_while_tokenising_and_leaves_nothing(tmp_path, big_text):
    run = Gated(tmp_path, "tokenising", "prepare", "--data", str(big_text), "--tokenizer", "char")
    run.wait_at_gate("tokenising")
    run.interrupt(then_wait_for="stopping")
    run.open_gate()
    rc, out, err = run.finish()
    assert rc == 128 + signal.SIGINT, err
    assert "stopped before the corpus was tokenised; nothing was saved" in out.replace("\n", " ")
    assert every_file(run.cache) == []


def test_ctrl_c_during_a_first_step_that_never_ends_stops_at_once(tmp_path, tiny_text):
    """A compilation (or a huge first step) does not look at the stop: with nothing to lose, the command ends
    without waiting for it, and says that nothing was saved."""
    run = Gated(tmp_path, "1", "train", "--data", str(tiny_text), *TINY, "--out", str(tmp_path / "run"))
    run.wait_at_gate("stepping")
    run.interrupt(then_wait_for="stopping after this step")
    rc, out, err = run.finish()  # the gate stays shut: the step never ends
    assert rc == 0, err
    assert "stopped before training began; nothing was saved" in out and "resume with" not in out
    assert not any(name.startswith(".") and "tmp" in name for name in every_file(tmp_path / "run"))


def test_a_second_ctrl_c_names_the_newest_checkpoint_on_disk(tmp_path, tiny_text):
    """Saves land on the writer thread while the training thread is busy and has not told them yet."""
    run_dir = tmp_path / "run"
    run = Gated(tmp_path, "5", "train", "--data", str(tiny_text), *TINY, "--save-interval", "3",
                "--eval-interval", "1000", "--out", str(run_dir), UNTOLD_SAVES="1")
    run.wait_at_gate("stepping")
    latest = run_dir / "latest"
    deadline = time.monotonic() + 120
    while not (latest.exists() and latest.read_text().strip() == "step-000003"):  # step 3's save has landed
        assert time.monotonic() < deadline, "the save of step 3 never landed"
        time.sleep(0.05)
    run.interrupt(then_wait_for="stopping after this step")
    run.proc.send_signal(signal.SIGINT)
    rc, out, err = run.finish()
    assert rc == 128 + signal.SIGINT
    assert latest.read_text().strip() == "step-000003"
    assert f"without saving the steps since the last checkpoint ({run_dir / 'step-000003'})" in err
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".tmp")]


def test_a_save_is_the_last_checkpoint_as_soon_as_it_is_on_disk(tmp_path):
    told: list[ev.Event] = []
    saves = RunSaves(told.append, lambda: None)
    saves.open(pin=False)
    saves.submit({"model.w": torch.ones(3)}, {}, run_dir=tmp_path, step=5, manifest={"note": "x"}, best=False,
                 keep_last=3, reason="interval", blocked=0.0)
    assert saves.writer.wait_idle(60)
    assert saves.last == tmp_path / "step-000005" and told == []  # on disk before the training thread tells it
    saves.finish()
    assert [e.step for e in told if isinstance(e, ev.CheckpointSaved)] == [5]


def test_a_stop_during_an_evaluation_ends_it_and_saves_the_step(tiny_text, tmp_path, monkeypatch):
    evaluating, release = threading.Event(), threading.Event()
    forward = GPT.forward

    def gated(self, *args, **kwargs):
        if not self.training and not evaluating.is_set():
            evaluating.set()
            while not release.wait(0.05):
                pass
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(GPT, "forward", gated)
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=50, eval_interval=4, eval_batches=4))
    rec = Recorder()
    trainer.subscribe(rec)
    thread = start_in_thread(trainer)
    assert evaluating.wait(120)
    trainer.stop()
    release.set()
    thread.join(120)
    finished = rec.of(ev.Finished)[-1]
    assert finished.reason == "stopped" and finished.step == 4
    assert rec.of(ev.Eval) == []  # the evaluation was left when the stop came
    saved = rec.of(ev.CheckpointSaved)
    assert [(s.step, s.reason) for s in saved] == [(4, "stop")]

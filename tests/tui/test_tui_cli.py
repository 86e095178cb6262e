"""The ``gptmini-tui`` entry point: option errors, and an end-to-end run in a real pseudo-terminal."""

from __future__ import annotations

import os
import re
import shutil
import time

import pytest
from tui_helpers import checkpoint_dirs

from gptmini_tui.__main__ import main

ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")
STEP = re.compile(rb"step\s+([0-9][0-9,]*)\s")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--batch-size", "x"], "invalid int value"),
        (["--preset", "huge"], "invalid choice"),
        (["--attach", "/nonexistent/run"], "no such run folder"),
        (["--attach", ".", "--epochs", "3"], "cannot be combined"),
        (["--lr", "-1"], "--lr must be a positive number"),
    ],
)
def test_bad_options_print_one_error_line_and_exit_2(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_help_lists_the_console_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--paused", "--attach", "--preset", "--batch-size", "--lr", "--out"):
        assert flag in out


@pytest.mark.timeout(90)
def test_end_to_end_in_a_pseudo_terminal(tmp_path, corpus_file):
    pexpect = pytest.importorskip("pexpect")
    exe = shutil.which("gptmini-tui")
    if exe is None:
        pytest.skip("gptmini-tui is not installed")
    run_dir = tmp_path / "run"
    args = [
        "--data", str(corpus_file), "--tokenizer", "char", "--n-layers", "1", "--d-model", "32", "--n-heads", "2",
        "--context", "32", "--batch-size", "4", "--max-steps", "100000", "--eval-interval", "100000",
        "--save-interval", "100000", "--out", str(run_dir),
    ]
    env = dict(os.environ, TERM="xterm-256color", OMP_NUM_THREADS="1", COLUMNS="120", LINES="40")
    child = pexpect.spawn(exe, args, env=env, dimensions=(40, 120), timeout=60)
    screen = bytearray()

    def read_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                screen.extend(child.read_nonblocking(65536, timeout=0.1))
            except pexpect.TIMEOUT:
                pass

    def last_step() -> int:
        steps = STEP.findall(ANSI.sub(b"", bytes(screen)))
        return int(steps[-1].replace(b",", b"")) if steps else 0

    try:
        deadline = time.monotonic() + 45
        while last_step() < 5 and time.monotonic() < deadline:
            read_for(0.3)
        first = last_step()
        assert first >= 5, "the step counter never moved"
        read_for(1.0)
        assert last_step() > first
        child.send("s")
        deadline = time.monotonic() + 20
        while not checkpoint_dirs(run_dir) and time.monotonic() < deadline:
            read_for(0.3)
        assert checkpoint_dirs(run_dir), "s did not save a checkpoint"
        child.send("q")
        child.expect(pexpect.EOF, timeout=30)
    finally:
        if child.isalive():
            child.terminate(force=True)
    child.close()
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus, bytes(screen[-2000:]))
    saved = checkpoint_dirs(run_dir)
    assert saved and (saved[-1] / "model.safetensors").is_file()
    # the quit saved the steps trained after the manual save
    assert len(saved) >= 2

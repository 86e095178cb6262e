"""The ``gptmini-tui`` entry point: option errors, and an end-to-end run in a real pseudo-terminal."""

from __future__ import annotations

import os
import re
import shutil
import signal
import termios
import time
from pathlib import Path

import pytest
from tui_helpers import checkpoint_dirs

from tests.helpers import read_metrics, wait_for_exit

from gptmini_tui.__main__ import main

ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")
STEP = re.compile(rb"step\s+([0-9][0-9,]*)\s")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--batch-size", "x"], "--batch-size must be a whole number, got 'x'"),
        (["--preset", "huge"], "--preset must be one of"),
        (["--attach", "/nonexistent/run"], "no such run folder"),
        (["--attach", __file__], "is a file; give the run folder"),
        (["--out", "/proc/gptmini-run"], "cannot write in /proc"),
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


class PtyConsole:
    """The installed ``gptmini-tui`` on a tiny config, in a 120x40 pseudo-terminal."""

    def __init__(self, run_dir, corpus_file, preexec_fn=None):
        self.pexpect = pytest.importorskip("pexpect")
        exe = shutil.which("gptmini-tui")
        if exe is None:
            pytest.skip("gptmini-tui is not installed")
        args = [
            "--data", str(corpus_file), "--tokenizer", "char", "--n-layers", "1", "--d-model", "32",
            "--n-heads", "2", "--context", "32", "--batch-size", "4", "--max-steps", "100000",
            "--eval-interval", "100000", "--save-interval", "100000", "--out", str(run_dir),
        ]
        env = dict(os.environ, TERM="xterm-256color", OMP_NUM_THREADS="1", COLUMNS="120", LINES="40")
        self.child = self.pexpect.spawn(exe, args, env=env, dimensions=(40, 120), timeout=60, preexec_fn=preexec_fn)
        self.screen = bytearray()

    def read_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.screen.extend(self.child.read_nonblocking(65536, timeout=0.1))
            except self.pexpect.TIMEOUT:
                pass

    def text(self) -> bytes:
        return ANSI.sub(b"", bytes(self.screen))

    def last_step(self) -> int:
        steps = STEP.findall(self.text())
        return int(steps[-1].replace(b",", b"")) if steps else 0

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.read_for(0.3)

    def wait_for_training(self) -> None:
        self.wait_for(lambda: self.last_step() >= 5, 45, "the step counter to move")
        first = self.last_step()
        self.wait_for(lambda: self.last_step() > first, 20, "the step counter to move on")

    def quit(self) -> int:
        self.child.send("q")
        self.child.expect(self.pexpect.EOF, timeout=30)
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        try:
            os.kill(self.child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.child.close(force=True)
        except Exception:  # a test closed the terminal or reaped the process itself
            pass


@pytest.fixture
def pty_console(tmp_path, corpus_file):
    console = PtyConsole(tmp_path / "run", corpus_file)
    yield console
    console.close()


@pytest.mark.timeout(90)
def test_end_to_end_in_a_pseudo_terminal(tmp_path, pty_console):
    run_dir = tmp_path / "run"
    pty_console.wait_for_training()
    pty_console.child.send("s")
    pty_console.wait_for(lambda: bool(checkpoint_dirs(run_dir)), 20, "s to save a checkpoint")
    code = pty_console.quit()
    assert code == 0, (code, pty_console.child.signalstatus, bytes(pty_console.screen[-2000:]))
    saved = checkpoint_dirs(run_dir)
    assert saved and (saved[-1] / "model.safetensors").is_file()
    # the quit saved the steps trained after the manual save: all of them, up to the last one trained
    assert len(saved) >= 2 and _saved_step(saved[-1]) == _last_trained(run_dir)


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _stop(console: PtyConsole) -> None:
    """SIGSTOP the console and wait until the kernel has stopped it (state T in /proc)."""
    pid = console.child.pid
    os.kill(pid, signal.SIGSTOP)
    console.wait_for(lambda: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T", 30,
                     "the console to be stopped")


@pytest.mark.timeout(90)
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux /proc")
def test_stopped_and_continued_from_outside_the_console_carries_on(pty_console):
    """``kill -STOP`` / ``kill -CONT`` (a job-control tool, a benchmark taking turns) leaves one console.

    Textual 8 alone starts another input reader and output writer on every SIGCONT, and the old
    ones never exit. If a shell put the terminal back into line mode while the console was stopped
    (bash does, on ``fg``), the console must switch it back to raw keys and redraw itself.
    """
    child = pty_console.child
    pty_console.wait_for_training()
    before = _threads(child.pid)
    for _ in range(4):
        _stop(pty_console)
        os.kill(child.pid, signal.SIGCONT)
        step = pty_console.last_step()
        pty_console.wait_for(lambda: pty_console.last_step() > step, 30, "training to go on after a continue")
    assert _threads(child.pid) < before + 4, "each continue started more threads"

    _stop(pty_console)
    attrs = termios.tcgetattr(child.child_fd)
    attrs[3] |= termios.ICANON | termios.ECHO  # what a shell does when it takes the terminal back
    termios.tcsetattr(child.child_fd, termios.TCSANOW, attrs)
    shown = len(pty_console.screen)
    os.kill(child.pid, signal.SIGCONT)
    pty_console.wait_for(lambda: not termios.tcgetattr(child.child_fd)[3] & termios.ICANON, 10,
                         "the console to take raw keys again")
    # and it redrew the whole screen, the header that never changes included
    pty_console.wait_for(lambda: b" params" in ANSI.sub(b"", bytes(pty_console.screen[shown:])), 10,
                         "a full repaint")
    step = pty_console.last_step()
    pty_console.wait_for(lambda: pty_console.last_step() > step, 20, "training to go on")

    child.send(" ")  # a single key is read once, by a single reader
    pty_console.wait_for(lambda: b"PAUSED" in pty_console.text()[-4000:], 10, "space to pause")
    assert _threads(child.pid) < before + 4
    assert pty_console.quit() == 0


def _saved_step(path) -> int:
    return int(path.name.split("-")[1])


def _last_trained(run_dir) -> int:
    """The last step the run trained, as its metrics.jsonl tells (written by the process itself)."""
    return max(r["step"] for r in read_metrics(run_dir) if r["event"] == "step")


@pytest.mark.timeout(90)
def test_sigterm_saves_and_exits_as_quit_does(tmp_path, pty_console):
    pty_console.wait_for_training()
    os.kill(pty_console.child.pid, signal.SIGTERM)
    pty_console.child.expect(pty_console.pexpect.EOF, timeout=30)
    pty_console.child.close()
    assert pty_console.child.exitstatus == 0, (pty_console.child.signalstatus, bytes(pty_console.screen[-2000:]))
    saved = checkpoint_dirs(tmp_path / "run")
    assert saved and _saved_step(saved[-1]) == _last_trained(tmp_path / "run") >= pty_console.last_step()


def _ignore_sighup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _default_sighup() -> None:  # as a login shell has it, even where the tests run under nohup
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sighup", ["handled", "ignored"])
def test_a_terminal_that_hangs_up_saves_and_exits(tmp_path, corpus_file, sighup):
    """The SSH connection drops: the terminal hangs up under the console, which must save and exit.

    With SIGHUP ignored (``nohup``), the console notices from polling its terminal.
    """
    pty_console = PtyConsole(tmp_path / "run", corpus_file, _ignore_sighup if sighup == "ignored" else _default_sighup)
    try:
        _hang_up_and_wait(tmp_path, pty_console)
    finally:
        pty_console.close()


def _hang_up_and_wait(tmp_path, pty_console) -> None:
    pty_console.wait_for_training()
    shown = pty_console.last_step()
    pid = pty_console.child.pid
    os.close(pty_console.child.child_fd)  # what sshd does when the connection is gone
    status = wait_for_exit(pid, 30, "the console, after its terminal hung up,")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    saved = checkpoint_dirs(tmp_path / "run")
    assert saved and _saved_step(saved[-1]) == _last_trained(tmp_path / "run") >= shown


@pytest.mark.parametrize("how", ["output to a pipe", "TERM=dumb"])
def test_without_a_terminal_it_says_so_in_one_line(tmp_path, corpus_file, how):
    """Run where no full screen can be drawn, the console explains and points to gptmini train instead of
    writing escape codes into a pipe or a log."""
    import subprocess

    exe = shutil.which("gptmini-tui")
    if exe is None:
        pytest.skip("gptmini-tui is not installed")
    args = [exe, "--data", str(corpus_file), "--out", str(tmp_path / "run")]
    if how == "output to a pipe":
        out = subprocess.run(args, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        output, code = out.stdout + out.stderr, out.returncode
    else:
        pexpect = pytest.importorskip("pexpect")
        child = pexpect.spawn(args[0], args[1:], env=dict(os.environ, TERM="dumb"), timeout=60)
        output = child.read()
        child.close()
        code = child.exitstatus
    assert code == 2, output[-500:]
    text = output.decode()
    assert text.count("\n") <= 1 and "\x1b" not in text and len(output) < 400
    assert "needs a terminal" in text and "gptmini train" in text
    assert not (tmp_path / "run").exists()

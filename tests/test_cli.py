"""The headless CLI, through the installed ``gptmini`` entry point."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import read_metrics, wait_for_exit

TINY = ["--n-layers", "1", "--n-heads", "2", "--d-model", "32", "--context", "32", "--batch-size", "4",
        "--eval-batches", "2", "--sample-tokens", "4", "--device", "cpu"]


def exe() -> list[str]:
    path = shutil.which("gptmini")
    return [path] if path else [sys.executable, "-m", "gptmini"]


def run(*args, cwd, timeout=240):
    return subprocess.run([*exe(), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--lr", "-1"], "--lr must be a positive number"),
        (["--lr", "abc"], "--lr must be a number, got 'abc'"),
        (["--preset", "gpt9"], "--preset must be one of cpu-demo"),
        (["--device", "quantum"], "unknown device 'quantum'"),
        (["--device", "cuda"], "no CUDA GPU"),
        (["--corpus", "the-verdict", "--data", "x.txt"], "either --data or --corpus"),
        (["--d-model", "30", "--n-heads", "4"], "d_model (30) must be divisible by n_heads (4)"),
        (["--data", "missing.txt"], "missing.txt"),
        (["--dropout", "1.5"], "--dropout must be in [0, 1)"),
        (["--beta2", "1"], "--beta2 must be in [0, 1), got 1.0"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_options_print_one_line_without_traceback(tmp_path, args, message):
    if args == ["--device", "cuda"]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    out = run("train", *args, "--max-steps", "1", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert message in lines[0]


def test_config_toml_same_names_and_unknown_keys_rejected(tiny_text, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('batch-size = 4\nlearning_rate = 0.1\n')
    out = run("train", "--config", str(bad), cwd=tmp_path)
    assert out.returncode == 2 and "unknown option(s): learning_rate" in out.stderr
    good = tmp_path / "good.toml"
    good.write_text(f'data = ["{tiny_text}"]\nmax-steps = 3\neval_interval = 3\nlr = 0.002\nbatch-size = 2\n'
                    '[model]\nn-layers = 1\nn-heads = 2\nd-model = 32\ncontext = 32\n')
    out = run("train", "--config", str(good), "--batch-size", "4", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["train"]["lr"] == 0.002 and cfg["train"]["batch_size"] == 4  # the command line wins
    assert cfg["model"]["n_layers"] == 1


def test_train_writes_run_folder_then_list_and_export(tiny_text, tmp_path):
    out = run("train", "--data", str(tiny_text), *TINY, "--max-steps", "6", "--eval-interval", "3",
              "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "val loss" in out.stdout and "sample:" in out.stdout and "checkpoint" in out.stdout
    assert {"config.json", "metrics.jsonl", "latest", "best"} <= {p.name for p in (tmp_path / "run").iterdir()}
    listing = run("checkpoints", str(tmp_path), cwd=tmp_path)
    assert listing.returncode == 0 and "step-000006" in listing.stdout and "latest" in listing.stdout
    exported = run("export", str(tmp_path / "run"), "--out", str(tmp_path / "w.safetensors"), cwd=tmp_path)
    assert exported.returncode == 0 and (tmp_path / "w.safetensors").exists()
    missing = run("checkpoints", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")


def test_resume_with_a_different_shape_names_the_mismatch(tiny_text, tmp_path):
    assert run("train", "--data", str(tiny_text), *TINY, "--max-steps", "2", "--out", str(tmp_path / "run"),
               cwd=tmp_path).returncode == 0
    out = run("train", "--resume", str(tmp_path / "run"), "--context", "64", "--max-steps", "4", cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "checkpoint has context_length=32, this run has 64" in out.stderr


def test_ctrl_c_saves_prints_how_to_resume_and_exits_zero(tiny_text, tmp_path):
    run_dir = tmp_path / "run"
    long_text = tmp_path / "long.txt"  # epochs of ~1,800 steps, so the save we see is Ctrl+C's, not an epoch end's
    long_text.write_text(tiny_text.read_text() * 50)
    proc = subprocess.Popen([*exe(), "train", "--data", str(long_text), *TINY, "--max-steps", "100000",
                             "--eval-interval", "100000", "--out", str(run_dir)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (run_dir / "metrics.jsonl").exists() and any(r["event"] == "step" for r in read_metrics(run_dir)):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "resume with: gptmini train --resume" in stdout
    assert (run_dir / "latest").exists()
    steps = [r["step"] for r in read_metrics(run_dir) if r["event"] == "step"]
    saved = [r for r in read_metrics(run_dir) if r["event"] == "checkpoint"]
    assert saved and saved[-1]["step"] == steps[-1] and saved[-1]["reason"] == "stop"


@pytest.mark.timeout(120)
def _default_sighup() -> None:
    """A login shell's SIGHUP, even where the tests themselves run under ``nohup`` (which the child would
    inherit, and under which ``gptmini train`` keeps training by design)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def test_a_terminal_that_hangs_up_saves_and_exits_zero(tiny_text, tmp_path):
    """Training over SSH without tmux: the connection drops, the terminal hangs up, the steps are saved."""
    pexpect = pytest.importorskip("pexpect")
    run_dir = tmp_path / "run"
    long_text = tmp_path / "long.txt"
    long_text.write_text(tiny_text.read_text() * 50)
    child = pexpect.spawn(exe()[0], [*exe()[1:], "train", "--data", str(long_text), *TINY, "--max-steps", "100000",
                                     "--eval-interval", "100000", "--out", str(run_dir)],
                          cwd=str(tmp_path), dimensions=(24, 80), timeout=60, preexec_fn=_default_sighup)
    try:
        deadline = time.time() + 120
        while not ((run_dir / "metrics.jsonl").exists() and any(r["event"] == "step" for r in read_metrics(run_dir))):
            assert time.time() < deadline, "training never started"
            try:
                child.read_nonblocking(65536, timeout=0.2)
            except pexpect.TIMEOUT:
                pass
        child.read_nonblocking(65536, timeout=0.5)
        os.close(child.child_fd)  # what sshd does when the connection is gone
        status = wait_for_exit(child.pid, 60, "gptmini train, after its terminal hung up,")
    finally:
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    steps = [r["step"] for r in read_metrics(run_dir) if r["event"] == "step"]
    saved = [r for r in read_metrics(run_dir) if r["event"] == "checkpoint"]
    assert saved and saved[-1]["step"] == steps[-1] and saved[-1]["reason"] == "stop"


def test_no_command_prints_help(tmp_path):
    out = run(cwd=tmp_path)
    assert out.returncode == 2 and "train" in out.stdout


def test_prepare_tokenises_without_torch_then_train_starts_from_the_cache(tmp_path):
    corpus = tmp_path / "prep.txt"
    corpus.write_text("".join(f"Line {i}: a corpus prepared ahead of training.\n" for i in range(400)))
    code = ("import sys; from gptmini.cli import main; rc = main(sys.argv[1:]); "
            "print('TORCH', 'torch' in sys.modules); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, "prepare", "--data", str(corpus), "--tokenizer", "char"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "tokenised prep" in out.stdout and "char tokens" in out.stdout and "TORCH False" in out.stdout
    again = run("prepare", "--data", str(corpus), "--tokenizer", "char", cwd=tmp_path)
    assert again.returncode == 0 and "already in the cache" in again.stdout
    trained = run("train", "--data", str(corpus), *TINY, "--tokenizer", "char", "--max-steps", "2",
                  "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "tokenised" not in trained.stdout  # the cache already held these tokens
    bad = run("prepare", "--data", str(tmp_path / "missing.txt"), cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "missing.txt" in bad.stderr

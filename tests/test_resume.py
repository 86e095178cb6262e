"""Bit-exact resume: N + M steps in one go == N steps, a fresh process with --resume, M more."""

import subprocess
import sys

import pytest

from tests.helpers import read_metrics

COMMON = ["--n-layers", "1", "--n-heads", "2", "--d-model", "32", "--context", "32", "--batch-size", "12",
          "--dropout", "0.1", "--eval-interval", "4", "--eval-batches", "2", "--sample-tokens", "4",
          "--warmup-steps", "3", "--lr-decay-steps", "16", "--seed", "11", "--device", "cpu"]


def gptmini(*args, cwd):
    out = subprocess.run([sys.executable, "-m", "gptmini", "train", *args], capture_output=True, text=True,
                         timeout=240, cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def step_losses(run_dir):
    return {r["step"]: r["loss"] for r in read_metrics(run_dir) if r["event"] == "step"}


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_in_a_fresh_process_is_bit_exact_mid_epoch_with_dropout(tiny_text, tmp_path, optimizer):
    data = ["--data", str(tiny_text), "--optimizer", optimizer]
    gptmini(*data, *COMMON, "--max-steps", "16", "--out", str(tmp_path / "full"), cwd=tmp_path)
    gptmini(*data, *COMMON, "--max-steps", "7", "--out", str(tmp_path / "part"), cwd=tmp_path)
    resumed = gptmini("--resume", str(tmp_path / "part"), "--max-steps", "16", cwd=tmp_path)
    assert "resumed at step 7" in resumed.stdout

    full, part = step_losses(tmp_path / "full"), step_losses(tmp_path / "part")
    # the epoch holds fewer than 16 steps, so step 7 is inside an epoch and the run crosses a boundary
    started = next(r for r in read_metrics(tmp_path / "full") if r["event"] == "run_started")
    assert 7 % started["batches_per_epoch"] != 0 and started["batches_per_epoch"] < 16
    assert [part[s] for s in range(1, 8)] == [full[s] for s in range(1, 8)]
    assert [part[s] for s in range(8, 17)] == [full[s] for s in range(8, 17)]  # exact, not approx

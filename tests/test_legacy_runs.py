"""Runs written before the task seam (by the code of 2a18282, tests/fixtures/make_legacy_runs.sh) still load,
sample and resume, and resuming them gives the losses that code gave."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gptmini.train.device import cpu_has_native_bf16
from tests.helpers import read_metrics

FIXTURES = Path(__file__).parent / "fixtures"


def _run(*args, cwd):
    out = subprocess.run([sys.executable, "-m", "gptmini", *args], capture_output=True, text=True, timeout=240,
                         cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture
def legacy(tmp_path):
    def copy(optimizer: str) -> Path:
        shutil.copy(FIXTURES / "legacy-corpus.txt", tmp_path / "corpus.txt")
        run = tmp_path / f"part-{optimizer}"
        shutil.copytree(FIXTURES / f"legacy-{optimizer}", run)
        return run
    return copy


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_a_run_written_before_tasks_resumes_with_the_losses_its_code_gave(legacy, tmp_path, optimizer):
    run = legacy(optimizer)
    expected = json.loads((run / "expected.json").read_text())
    out = _run("train", "--resume", str(run), "--max-steps", "12", cwd=tmp_path)
    assert "resumed at step 5" in out.stdout
    rows = read_metrics(run)
    steps = {r["step"]: r["loss"] for r in rows if r["event"] == "step" and r["step"] > 5}
    evals = {r["step"]: r["val_loss"] for r in rows if r["event"] == "eval" and r["step"] > 5}
    # Bit-exact on the kind of CPU the fixture was made on. Muon orthogonalises in bf16 where the CPU computes
    # bf16 natively (as there) and in fp32 elsewhere, so on another CPU kind its losses agree to rounding only.
    rel = 1e-6 if optimizer == "adamw" or cpu_has_native_bf16() else 2e-3
    assert steps == pytest.approx({int(k): v for k, v in expected["resumed_step_losses"].items()}, rel=rel)
    assert evals == pytest.approx({int(k): v for k, v in expected["resumed_val_losses"].items()}, rel=rel)
    started = [r for r in rows if r["event"] == "run_started"][-1]
    assert started["task"] == "pretrain" and started["start_step"] == 5


def test_a_run_written_before_tasks_samples(legacy, tmp_path):
    run = legacy("adamw")
    out = _run("sample", "--checkpoint", str(run), "--prompt", "The model", "--max-new-tokens", "12",
               "--strategy", "greedy", cwd=tmp_path)
    assert out.stdout.startswith("The model") and len(out.stdout.strip()) > len("The model")

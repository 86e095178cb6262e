"""torchrun with 2 CPU processes (gloo) == one process with the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import read_metrics

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(args, cwd, env):
    out = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=cwd, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


@pytest.mark.slow
def test_two_gloo_ranks_match_single_process_with_same_global_batch(tiny_text, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    ddp.mkdir()
    single.mkdir()
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
          str(WORKER), str(tiny_text), str(ddp), "2"], tmp_path, env)
    _run([sys.executable, str(WORKER), str(tiny_text), str(single), "4"], tmp_path, env)

    r0, r1 = load_file(str(ddp / "rank0.safetensors")), load_file(str(ddp / "rank1.safetensors"))
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # both ranks end with identical weights
    one = load_file(str(single / "rank0.safetensors"))
    for k in r0:
        torch.testing.assert_close(r0[k], one[k], atol=2e-5, rtol=1e-4)

    def losses(d):
        return [r["loss"] for r in read_metrics(d) if r["event"] == "step"]

    assert losses(ddp) == pytest.approx(losses(single), abs=1e-5)
    started = next(r for r in read_metrics(ddp) if r["event"] == "run_started")
    assert started["world_size"] == 2 and started["batch_size"] == 2
    steps = [r for r in read_metrics(ddp) if r["event"] == "step"]
    assert steps[-1]["tokens_seen"] == 6 * 2 * 2 * 2 * 32  # steps x ranks x batch x accum x context
    assert not (ddp / "metrics.jsonl").read_text().count('"rank"')  # one writer: rank 0 only

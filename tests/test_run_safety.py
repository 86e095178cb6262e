"""A run folder belongs to one process, every option takes effect or is refused, a stop always stops, and
a checkpoint's manifest is checked, not believed -- through the installed ``gptmini`` commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import read_metrics
from tests.test_cli import TINY, exe, run

pytestmark = pytest.mark.timeout(240)


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def has_event(run_dir: Path, kind: str) -> bool:
    return (run_dir / "metrics.jsonl").exists() and any(r["event"] == kind for r in read_metrics(run_dir))


def long_run(tmp_path: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    text = tmp_path / "long.txt"
    text.write_text("the model reads every line of text and learns which letter comes next.\n" * 4000)
    return subprocess.Popen([*exe(), "train", "--data", str(text), *TINY, "--max-steps", "1000000",
                             "--eval-interval", "1000000", "--out", str(run_dir), *extra], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_a_second_writer_of_a_run_folder_is_refused_naming_the_first(tmp_path):
    run_dir = tmp_path / "run"
    first = long_run(tmp_path, run_dir)
    try:
        wait_for(lambda: has_event(run_dir, "step"), 120, "the first run to train")
        before = sorted(p.name for p in run_dir.iterdir())
        second = run("train", "--data", str(tmp_path / "long.txt"), *TINY, "--max-steps", "5",
                     "--out", str(run_dir), cwd=tmp_path)
        line = one_error_line(second)
        assert "being trained by another process" in line and f"PID {first.pid}" in line and " since " in line
        assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing written by the second
        assert [r["event"] for r in read_metrics(run_dir)].count("run_started") == 1
    finally:
        first.send_signal(signal.SIGINT)
        _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    # the lock goes with the process: the folder can be resumed at once
    again = run("train", "--resume", str(run_dir), "--max-steps", "3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_resume_refuses_an_option_the_checkpoint_fixes_and_records_those_it_changes(tiny_text, tmp_path):
    run_dir = tmp_path / "run"
    assert run("train", "--data", str(tiny_text), *TINY, "--max-steps", "2", "--tokenizer", "char",
               "--out", str(run_dir), cwd=tmp_path).returncode == 0
    config_before = (run_dir / "config.json").read_text()
    refused = run("train", "--resume", str(run_dir), "--tokenizer", "gpt2", "--seed", "9", "--max-steps", "4",
                  cwd=tmp_path)
    line = one_error_line(refused)
    assert "--tokenizer was char, now gpt2" in line and "--seed was 1337, now 9" in line
    assert (run_dir / "config.json").read_text() == config_before  # still says what the run does
    changed = run("train", "--resume", str(run_dir), "--lr", "0.0005", "--max-steps", "4", cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert "--lr default → 0.0005" in changed.stdout and "--max-steps 2 → 4" in changed.stdout
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["lr"] == 0.0005 and config["train"]["tokenizer"] == "char"
    assert config["resumed"]["at_step"] == 2 and config["resumed"]["changed"]["lr"] == [None, 0.0005]
    started = [r for r in read_metrics(run_dir) if r["event"] == "run_started"][-1]
    assert started["changed"] == {"lr": [None, 0.0005], "max_steps": [2, 4]}


@pytest.mark.parametrize("case", ["under a file", "under /proc", "unwritable folder", "missing data",
                                  "missing resume"])
def test_unusable_paths_are_one_line_and_nothing_is_written(tiny_text, tmp_path, case):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    args = ["--data", str(tiny_text), "--out", str(tmp_path / "new" / "run")]
    if case == "under a file":
        args = ["--data", str(tiny_text), "--out", str(a_file / "run")]
    elif case == "under /proc":
        args = ["--data", str(tiny_text), "--out", "/proc/gptmini-run"]
    elif case == "unwritable folder":
        if os.geteuid() == 0:
            pytest.skip("root writes where the mode bits say no")
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        args = ["--data", str(tiny_text), "--out", str(locked / "run")]
    elif case == "missing data":
        args = ["--data", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "new" / "run")]
    elif case == "missing resume":
        args = ["--resume", str(tmp_path / "nope"), "--out", str(tmp_path / "new" / "run")]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    line = one_error_line(run("train", *args, *TINY, "--max-steps", "1", cwd=tmp_path))
    expected = {"under a file": "which is a file", "under /proc": "cannot write in /proc",
                "unwritable folder": "cannot write in", "missing data": "no such file or directory",
                "missing resume": "no such checkpoint or run folder"}[case]
    assert expected in line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_config_toml_values_are_checked_like_the_command_line(tmp_path):
    for text, message in [("data = 5", "--data must be a path or a list of paths, got 5"),
                          ('compile = "no"', "--compile must be true or false, got 'no'"),
                          ('batch-size = "x"', "--batch-size must be a whole number, got 'x'")]:
        path = tmp_path / "bad.toml"
        path.write_text(text + "\n")
        line = one_error_line(run("train", "--config", str(path), cwd=tmp_path))
        assert f"{path}: {message}" in line
    line = one_error_line(run("train", "--batch-size", "x", cwd=tmp_path))  # the same words on the command line
    assert "--batch-size must be a whole number, got 'x'" in line


def test_a_second_signal_during_a_long_step_stops_at_once_without_saving(tmp_path):
    """One step of a context of 200,000 tokens takes minutes on a CPU: the first Ctrl+C asks for a stop
    after it; the second must not wait for it."""
    text = tmp_path / "big.txt"
    text.write_text(("every effort moves you closer to a lower loss. " * 50_000)[:2_400_000])
    run_dir = tmp_path / "run"
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen([*exe(), "train", "--data", str(text), "--tokenizer", "char", "--n-layers", "1",
                                 "--n-heads", "2", "--d-model", "32", "--context", "200000", "--batch-size", "1",
                                 "--eval-batches", "1", "--device", "cpu", "--threads", "1", "--out", str(run_dir)],
                                cwd=tmp_path, stdout=fo, stderr=fe)
    try:
        wait_for(lambda: "one optimizer step will take about" in out.read_text(), 120, "the slow-step warning")
        wait_for(lambda: has_event(run_dir, "state"), 60, "the loop to start")
        assert not has_event(run_dir, "step")
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping after this step" in err.read_text(), 60, "the first stop to be acknowledged")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)  # far less than the step itself
    finally:
        if proc.poll() is None:
            proc.kill()
    # nothing was trained yet: the first stop may already have ended it (rc 0), or the second did (130)
    assert proc.returncode in (0, 128 + signal.SIGINT)
    assert "stopped before training began; nothing was saved" in err.read_text() + out.read_text()
    assert not list(run_dir.glob("step-*"))


def _trained(tmp_path: Path, tiny_text: Path) -> Path:
    run_dir = tmp_path / "run"
    assert run("train", "--data", str(tiny_text), *TINY, "--max-steps", "4", "--out", str(run_dir),
               cwd=tmp_path).returncode == 0
    return run_dir


def test_an_edited_manifest_is_reported_not_believed(tiny_text, tmp_path):
    run_dir = _trained(tmp_path, tiny_text)
    manifest = run_dir / "step-000004" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["val_loss"] = 0.01  # a better number than was measured
    manifest.write_text(json.dumps(data, indent=1, sort_keys=True))
    listing = run("checkpoints", str(run_dir), cwd=tmp_path)
    assert listing.returncode == 0 and "not trusted" in listing.stdout and "was edited" in listing.stdout
    for args in (["sample", "--checkpoint", str(run_dir), "--prompt", "the"], ["train", "--resume", str(run_dir)]):
        out = run(*args, cwd=tmp_path)
        assert out.returncode == 2 and "was edited after the save" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    data["val_loss"], data["step"] = json.loads(manifest.read_text())["val_loss"], 40  # a step from elsewhere
    manifest.write_text(json.dumps(data, indent=1, sort_keys=True))
    out = run("sample", "--checkpoint", str(run_dir / "step-000004"), "--prompt", "the", cwd=tmp_path)
    assert out.returncode == 2 and "says step 40 but the folder is step-000004" in out.stderr


def test_sampling_needs_only_the_model_and_the_manifest(tiny_text, tmp_path):
    run_dir = _trained(tmp_path, tiny_text)
    optim = run_dir / "step-000004" / "optimizer.safetensors"
    optim.write_bytes(optim.read_bytes()[:100])  # a broken optimizer file
    out = run("sample", "--checkpoint", str(run_dir), "--prompt", "the", "--max-new-tokens", "5", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("the") and "step 4" in out.stderr
    resumed = run("train", "--resume", str(run_dir), "--max-steps", "6", cwd=tmp_path)
    assert resumed.returncode == 2 and "optimizer.safetensors" in resumed.stderr


def test_a_run_too_big_for_memory_is_refused_with_the_estimate(tiny_text, tmp_path):
    line = one_error_line(run("train", "--data", str(tiny_text), "--tokenizer", "char", "--n-layers", "40",
                              "--n-heads", "16", "--d-model", "65536", "--context", "32", "--batch-size", "4",
                              "--out", str(tmp_path / "run"), cwd=tmp_path))
    assert "this run needs at least" in line and "GB of memory" in line
    assert "lower --batch-size or --context" in line and not (tmp_path / "run").exists()


def test_a_failed_save_makes_the_exit_status_non_zero(tiny_text, tmp_path, monkeypatch, capsys):
    from gptmini.cli import main

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gptmini.ckpt.writer.save_checkpoint", disk_full)
    code = main(["train", "--data", str(tiny_text), *TINY, "--max-steps", "4", "--save-interval", "2",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1
    assert "checkpoint save(s) failed" in err and "the last one on disk is none" in err

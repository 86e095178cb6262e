"""``gptmini respond``: an instruction-tuned run answers its test split (or --data) in batches, written as the
book's chapter 7 writes them; the same answers as one at a time; bad input is one line and writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gptmini.cli import main
from gptmini.train.engine import Trainer
from tests.helpers import tiny_config
from tests.test_instruct import RECORDS, instruct_config

REPO = Path(__file__).resolve().parents[1]
STEPS = 36


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny instruct run (char tokenizer, 1 layer): its folder and its data file."""
    root = tmp_path_factory.mktemp("respond")
    data = root / "tasks.json"
    data.write_text(json.dumps(RECORDS, indent=1))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPTMINI_CACHE_DIR", str(root / "cache"))
        finished = Trainer(instruct_config(data, root / "run", max_steps=STEPS, lr=1e-2)).run()
    assert finished.reason == "completed"
    return root / "run", data


def cli(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gptmini", "respond", *map(str, argv)], capture_output=True,
                          text=True, timeout=300, cwd=REPO)


def respond(capsys, *argv) -> tuple[int, str]:
    """The command in this process: its exit status and its stderr."""
    capsys.readouterr()
    try:
        rc = main(["respond", *map(str, argv)])
    except SystemExit as exc:  # argparse
        rc = exc.code
    return rc, capsys.readouterr().err


def one_line(err: str, said: str) -> None:
    assert err.startswith("error: ") and said in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def unbatched(run_dir: Path, records: list[dict], max_new_tokens: int) -> list[str]:
    """Each record's answer from the single-prompt Sampler (what training shows after an evaluation)."""
    from gptmini.ckpt.state import load_for_inference
    from gptmini.data.prompts import prompt_style
    from gptmini.tasks.instruct import respond as answer

    model, tok, manifest = load_for_inference(run_dir)
    style = prompt_style(manifest["task"]["template"])
    return [answer(model, tok, style.prompt(r["instruction"], r.get("input", "")), max_new_tokens) for r in records]


# ------------------------------------------------------------------ answers
def test_the_runs_test_split_is_answered_as_the_book_writes_it(run):
    run_dir, _ = run
    out = cli("--checkpoint", run_dir, "--batch-size", "3")  # 4 test records: a full batch and one alone
    assert out.returncode == 0, out.stderr
    assert "wrote 4 responses" in out.stderr and "test split" in out.stderr
    split = json.loads((run_dir / "split.json").read_text())
    records = [RECORDS[i] for i in split["test"]["indices"]]
    written = json.loads((run_dir / f"responses-step-{STEPS:06d}.json").read_text())
    assert [{k: v for k, v in r.items() if k != "model_response"} for r in written] == records
    assert [r["model_response"] for r in written] == unbatched(run_dir, records, 256)  # the book's 256


def test_data_records_batched_equal_one_at_a_time(run, tmp_path):
    run_dir, data = run
    answers = tmp_path / "answers.json"
    out = cli("--checkpoint", run_dir, "--data", data, "--out", answers, "--batch-size", "16",
              "--max-new-tokens", "40")
    assert out.returncode == 0, out.stderr
    written = json.loads(answers.read_text())
    responses = [r["model_response"] for r in written]
    assert [{**rec, "model_response": a} for rec, a in zip(RECORDS, responses)] == written
    assert responses == unbatched(run_dir, RECORDS, 40)
    assert len(set(responses)) > 1 and any(responses)  # not all alike, not all empty: something to compare


def test_an_existing_output_is_kept_unless_forced(run, tmp_path, capsys):
    run_dir, data = run
    answers = tmp_path / "answers.json"
    answers.write_text("mine\n")
    rc, err = respond(capsys, "--checkpoint", run_dir, "--data", data, "--out", answers, "--max-new-tokens", "2")
    assert rc == 2 and answers.read_text() == "mine\n"
    one_line(err, f"{answers} exists; pass --force to overwrite it")
    rc, err = respond(capsys, "--checkpoint", run_dir, "--data", data, "--out", answers, "--max-new-tokens", "2",
                      "--force")
    assert rc == 0, err
    assert len(json.loads(answers.read_text())) == len(RECORDS)
    assert [p.name for p in tmp_path.iterdir()] == ["answers.json"]  # no temporary file left


def test_seeded_sampling_is_the_same_in_any_batch_size(run, tmp_path, capsys):
    run_dir, data = run
    texts = []
    for batch_size in (1, 7):
        out = tmp_path / f"b{batch_size}.json"
        rc, err = respond(capsys, "--checkpoint", run_dir, "--data", data, "--out", out, "--strategy", "top-k",
                          "--top-k", "5", "--seed", "3", "--max-new-tokens", "20", "--batch-size", batch_size)
        assert rc == 0, err
        texts.append(out.read_text())
    assert texts[0] == texts[1]
    rc, err = respond(capsys, "--checkpoint", run_dir, "--data", data, "--out", tmp_path / "unseeded.json",
                      "--strategy", "temperature", "--max-new-tokens", "3")
    assert rc == 0 and "sampling with seed " in err and "reproduce with --seed" in err


# ------------------------------------------------------------------ refusals
def test_a_pre_training_checkpoint_is_refused(tmp_path, tiny_text, capsys):
    Trainer(tiny_config(tiny_text, tmp_path / "pre", max_steps=2)).run()
    rc, err = respond(capsys, "--checkpoint", tmp_path / "pre", "--data", tiny_text)
    assert rc == 2
    one_line(err, "is a pre-training checkpoint; gptmini respond answers instructions (train one with --task "
                  "instruct)")


def test_an_output_that_cannot_be_written_is_refused_before_any_work(run, tmp_path, capsys):
    run_dir, _ = run
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, err = respond(capsys, "--checkpoint", run_dir, "--data", tmp_path / "missing.json",
                      "--out", blocker / "answers.json")  # the output is checked before the data is read
    assert rc == 2
    one_line(err, f"cannot write {blocker / 'answers.json'} (--out {blocker} is a file, not a folder)")
    rc, err = respond(capsys, "--checkpoint", run_dir, "--out", tmp_path)
    one_line(err, f"{tmp_path} is a folder; give --out a file name")


def test_an_empty_test_split_asks_for_data(run, tmp_path, capsys):
    _, data = run
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPTMINI_CACHE_DIR", str(tmp_path / "cache"))
        Trainer(instruct_config(data, tmp_path / "r", val_data=str(data), max_steps=1)).run()  # no test split
    rc, err = respond(capsys, "--checkpoint", tmp_path / "r")
    assert rc == 2
    one_line(err, "the run's test split is empty")
    assert "pass --data FILE" in err and not list((tmp_path / "r").glob("responses*"))


def test_a_changed_data_file_is_said_in_one_line(run, capsys):
    run_dir, data = run
    before = data.read_text()
    try:
        data.write_text(json.dumps(RECORDS[:-1]))
        rc, err = respond(capsys, "--checkpoint", run_dir, "--out", run_dir.parent / "changed.json")
    finally:
        data.write_text(before)
    assert rc == 2
    one_line(err, f"{data} has changed since the run split it")


@pytest.mark.parametrize("argv, said", [
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--seed", "1"], "--seed has no effect with --strategy greedy"),
    (["--strategy", "top-k"], "--strategy top-k needs --top-k N"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1, got 0"),
])
def test_bad_options_are_one_line(run, argv, said, capsys):
    rc, err = respond(capsys, "--checkpoint", run[0], *argv)
    assert rc == 2
    one_line(err, said)


def test_records_the_tokenizer_cannot_read_are_named(run, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([RECORDS[0], {"instruction": "Zähle bis drei.", "output": "1 2 3"}]))
    rc, err = respond(capsys, "--checkpoint", run[0], "--data", bad, "--out", tmp_path / "a.json")
    assert rc == 2
    one_line(err, f"{bad}: record 2:")
    assert not (tmp_path / "a.json").exists()


def test_a_checkpoint_folder_is_taken_as_well_as_a_run_folder(run, tmp_path, capsys):
    run_dir, data = run
    rc, err = respond(capsys, "--checkpoint", run_dir / f"step-{STEPS:06d}", "--out", tmp_path / "a.json",
                      "--max-new-tokens", "2")
    assert rc == 0, err
    assert len(json.loads((tmp_path / "a.json").read_text())) == 4


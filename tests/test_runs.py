"""Run folders side by side (gptmini.runs), ``gptmini plot``, and the corpus's own sample prompt."""

from __future__ import annotations

import json

import pytest

from gptmini import events as ev
from gptmini.runs import Comparison, RunIndex, find_run_folders, options_diff, summarize
from gptmini.text.tokenizer import build_tokenizer
from gptmini.tasks.pretrain import RASCHKA_PROMPT, pick_sample_prompt
from tests.test_cli import TINY, run


def train(tmp_path, name, tiny_text, *extra) -> None:
    out = run("train", "--data", str(tiny_text), *TINY, "--max-steps", "6", "--eval-interval", "3",
              "--out", str(tmp_path / "runs" / name), *extra, cwd=tmp_path)
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_text_module):
    tmp = tmp_path_factory.mktemp("runs")
    train(tmp, "base", tiny_text_module)
    train(tmp, "slow", tiny_text_module, "--lr", "0.0003")
    return tmp / "runs"


@pytest.fixture(scope="module")
def tiny_text_module(tmp_path_factory):
    p = tmp_path_factory.mktemp("text") / "tiny.txt"
    words = "the model reads every line of text and learns which letter comes next".split()
    p.write_text("\n".join(" ".join(words[(i * 3 + j) % len(words)] for j in range(7)) for i in range(200)) + "\n")
    return p


def test_runs_are_found_summarized_and_told_apart(two_runs):
    folders = find_run_folders(two_runs)
    assert [p.name for p in folders] == ["base", "slow"]
    base, slow = summarize(folders[0]), summarize(folders[1])
    assert base.steps == 6 and base.tokens == 6 * 4 * 32 and not base.live
    assert base.model == "1L 2H d32 ctx32" and base.tokenizer == "char" and base.best_val is not None
    assert options_diff(base, slow) == ["lr default → 0.0003"]
    assert find_run_folders(two_runs / "base") == [folders[0]]  # a run folder is its own root


def test_the_index_reads_only_what_runs_appended(two_runs, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(two_runs, root)
    index = RunIndex(root)
    first = {s.name: s for s in index.refresh()}
    metrics = root / "slow" / "metrics.jsonl"
    offsets = {p.name: scan.offset for p, scan in index._scans.items()}
    assert offsets["slow"] == metrics.stat().st_size
    step = json.loads([line for line in metrics.read_text().splitlines() if '"event":"step"' in line][-1])
    step["step"], step["tokens_seen"] = 7, 7 * 128
    with metrics.open("a") as fh:
        fh.write(json.dumps(step) + "\n" + '{"event":"step","step":8')  # and half a line, still being written
    again = {s.name: s for s in index.refresh()}
    assert again["slow"].steps == 7 and again["base"] == first["base"]
    assert index._scans[metrics.parent.resolve()].offset < metrics.stat().st_size  # the half line waits


def test_a_comparison_loads_curves_and_keeps_each_runs_colour(two_runs):
    c = Comparison()
    base, slow = two_runs / "base", two_runs / "slow"
    assert c.toggle(slow) and c.toggle(base)
    assert [p.name for p in c.shown] == ["slow", "base"] and len(c.shown[base.resolve()].history) == 6
    assert c.shown[base.resolve()].finished and not c.poll()  # finished runs do not change
    assert not c.toggle(slow)  # off
    assert c.toggle(slow) and c.color(slow.resolve()) == 0 and c.color(base.resolve()) == 1  # same colour


def test_a_live_run_is_followed_as_it_grows(tmp_path):
    folder = tmp_path / "live"
    folder.mkdir()
    metrics = folder / "metrics.jsonl"

    def step(i):
        return json.dumps(ev.Step(step=i, epoch=1, batch=i, batches_per_epoch=100, total_steps=100, tokens_seen=i,
                                  loss=2.0, loss_smooth=2.0, lr=1e-3, grad_norm=1.0, tok_per_s=1.0,
                                  eta_s=1.0).to_record()) + "\n"

    metrics.write_text(step(1) + step(2))
    c = Comparison()
    c.toggle(folder)
    assert summarize(folder).live and not c.shown[folder.resolve()].finished
    with metrics.open("a") as fh:
        fh.write(step(3))
    assert c.poll() and len(c.shown[folder.resolve()].history) == 3


def test_gptmini_plot_draws_one_line_per_run(two_runs, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    from gptmini.cli.plot import figure

    out = tmp_path / "loss.png"
    result = run("plot", str(two_runs), "--out", str(out), "--log-y", "--x", "tokens", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (5 * 120, 9 * 120)  # 9x5 inches at --dpi 120
    fig = figure([two_runs / "base", two_runs / "slow"], x="tokens", log_y=True)
    ax = fig.axes[0]
    trains = [line for line in ax.lines if line.get_label().endswith("train")]
    assert [line.get_label() for line in trains] == ["base train", "slow train"]
    assert list(trains[0].get_xdata()) == [128 * i for i in range(1, 7)] and ax.get_yscale() == "log"
    assert trains[0].get_color() != trains[1].get_color()
    bad = run("plot", str(tmp_path / "nothing-here"), "--out", str(out), cwd=tmp_path)
    assert bad.returncode == 2 and "not a run folder" in bad.stderr


def test_the_sample_prompt_fits_the_corpus():
    char = build_tokenizer("char", ["ROMEO: What light\nJULIET: Ay me\nthe-verdict text"])
    assert pick_sample_prompt(None, build_tokenizer("gpt2"), "the-verdict", "") == (RASCHKA_PROMPT, None)
    assert pick_sample_prompt(None, char, "tinyshakespeare", "ght\nJULIET: Ay me\n") == ("JULIET: Ay me", None)
    assert pick_sample_prompt("ROMEO:", char, "tinyshakespeare", "") == ("ROMEO:", None)
    prompt, warning = pick_sample_prompt("Zebra", char, "tinyshakespeare", "")
    assert prompt is None and "--sample-prompt cannot be used" in warning

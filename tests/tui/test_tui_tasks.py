"""Pilot tests of the console fine-tuning: an instruction run (its template in the header, validation answers
beside their references in the Samples panel, the playground answering up to end-of-text, the formatted
prompt) and a classification run (its labels, the probability of each label as bars, accuracy as counters
and on the plot).

Each run starts paused from weights trained once for the module (``--init-from``): the evaluation before
the first step and everything the playground computes come from known weights, so the answers are the same
on every machine. Every key is followed by a wait for what it should cause, never a fixed pause.
"""

from __future__ import annotations

import csv
import json

import pytest
from tui_helpers import current_step, press, record_notifications, wait_until

from gptmini import events as ev
from gptmini.data.prompts import PROMPT_STYLES
from gptmini.train.engine import Trainer
from gptmini.train_config import TrainConfig
from gptmini_tui.app import GPTMiniApp
from gptmini_tui.settings import PlaygroundSettings
from gptmini_tui.widgets import KeyFooter
from gptmini_tui.widgets.counters import pct
from gptmini_tui.widgets.reply import Reply, Verdict
from tests.test_classify import labelled_rows
from tests.test_instruct import RECORDS

pytestmark = pytest.mark.timeout(180)

SIZE = (120, 40)
ALPACA = PROMPT_STYLES["alpaca"]


@pytest.fixture(scope="module")
def tasks_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("instruct") / "tasks.json"
    path.write_text(json.dumps(RECORDS))
    return path


@pytest.fixture(scope="module")
def answering_run(tasks_file):
    """A tiny char model fine-tuned on the additions until it answers and ends its answers (a few seconds)."""
    out = tasks_file.parent / "answering"
    Trainer(TrainConfig(task="instruct", data=[str(tasks_file)], out=str(out), tokenizer="char", n_layers=1,
                        n_heads=2, d_model=32, context=192, batch_size=4, max_steps=200, eval_interval=200,
                        eval_batches=2, sample_tokens=12, lr=3e-3, seed=5)).run()
    return out


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("classify") / "labels.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["text", "label"])
        writer.writeheader()
        writer.writerows(labelled_rows())
    return path


@pytest.fixture(scope="module")
def words_run(labels_file):
    """A tiny char model pre-trained on the texts' words (as tests/test_classify.py's ``pretrained``)."""
    text = labels_file.parent / "words.txt"
    text.write_text("\n".join(r["text"] for r in labelled_rows(400, seed=9)))
    out = labels_file.parent / "words"
    Trainer(TrainConfig(data=[str(text)], out=str(out), tokenizer="char", n_layers=1, n_heads=2, d_model=32,
                        context=48, batch_size=8, max_steps=30, optimizer="adamw", lr=3e-3)).run()
    return out


def instruct_app(tasks_file, answering_run, tmp_path, **kw) -> GPTMiniApp:
    cfg = TrainConfig(task="instruct", data=[str(tasks_file)], init_from=str(answering_run), out=str(tmp_path / "sft"),
                      batch_size=4, max_steps=100_000, eval_interval=100_000, eval_batches=2, sample_tokens=20, seed=5,
                      **kw)
    return GPTMiniApp(cfg, start_paused=True)


def stats_text(app) -> str:
    return str(app.main.counters.query_one("#stats").render())


def samples_text(app) -> str:
    return str(app.main.samples.body.render())


async def first_evaluation(pilot, app) -> None:
    """The evaluation of the weights the run starts from, before any step (the book prints it too)."""
    await wait_until(pilot, lambda: app.session.state == "paused" and app.session.record.latest_eval is not None,
                     60, "the evaluation before the first step")


async def test_an_instruction_run_names_its_template_and_shows_answers_beside_references(tasks_file, answering_run,
                                                                                          tmp_path):
    app = instruct_app(tasks_file, answering_run, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await first_evaluation(pilot, app)
        assert main.header.info["task"] == "instruct · alpaca template"
        assert main.header.info["params"].endswith(" params")  # every weight trains: no trainable count
        record = app.session.record
        first = record.latest_eval
        assert first.step == 0 and current_step(app) == 0  # the initial validation loss, before any step
        await wait_until(pilot, lambda: f"val {first.val_loss:.3f}" in " ".join(stats_text(app).split()), 30,
                         "the initial validation loss in the counters")
        assert list(app.session.history.val.step) == [0]  # and on the plot
        # the Samples panel: a few fixed validation examples, each instruction beside its reference and the answer
        await wait_until(pilot, lambda: len(record.samples) == 3 and main.samples.count == 3, 30, "three examples")
        shown = samples_text(app)
        assert shown.startswith("step 0 · ") and shown.count("reference  ") == 3 and shown.count("answer     ") == 3
        for sample in record.samples:
            assert sample.reference and f"▸ {sample.prompt.splitlines()[0]}" in shown
            answer = sample.text.replace("\n", "\n" + " " * 13)  # its later lines under its first
            assert f"reference  {sample.reference}" in shown and f"answer     {answer}" in shown
        # the formatted-prompt key belongs to an instruction run: in its footer
        assert main.check_action("toggle_formatted", ()) is True and main.check_action("compare", ()) is True
        footer = main.query_one(KeyFooter)
        await wait_until(pilot, lambda: "Formatted" in [e.label for e in footer.shown], 30, "f in the footer")


async def test_the_playground_answers_an_instruction_up_to_end_of_text(tasks_file, answering_run, tmp_path):
    app = instruct_app(tasks_file, answering_run, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        pg = main.playground
        await first_evaluation(pilot, app)
        assert pg.extra_input.display  # an instruction's optional input has a box of its own
        pg.settings = PlaygroundSettings(strategy="greedy", max_new_tokens=60)
        await press(pilot, "i", until=lambda: app.focused is pg.prompt_input, what="the prompt to get focus")
        pg.prompt_input.value = "Add 2 and 3."
        formatted = ALPACA.prompt("Add 2 and 3.")
        # the next-token view reads what the model reads: the instruction in the template
        await wait_until(pilot, lambda: main.probs.shown_prompt == formatted and main.probs.candidates, 30,
                         "the next-token distribution after the response head")
        await press(pilot, "enter", until=lambda: pg.replies and pg.replies[-1].finished, what="an answer")
        reply = pg.replies[-1]
        assert isinstance(reply, Reply) and reply.reason == "done", reply.status
        assert reply.prompt == "Add 2 and 3." and reply.formatted == formatted
        # the answer ended at the end marker (a blank line for char), before the token limit
        assert reply.at_end is True and 0 < reply.n_tokens < 60 and "end-of-text" in reply.status
        assert reply.text.strip().startswith("It is") and "\n\n" not in reply.text
        # an input goes into the template's input section
        await press(pilot, "tab", until=lambda: app.focused is pg.extra_input, what="the input box")
        assert main.typing  # letter keys type into it
        pg.extra_input.value = "2+3"
        await wait_until(pilot, lambda: main.probs.prompt == ALPACA.prompt("Add 2 and 3.", "2+3"), 30,
                         "the prompt with its input")
        # the formatted prompt on request
        await press(pilot, "escape", until=lambda: not main.typing, what="the prompt to lose focus")
        await press(pilot, "f", until=lambda: pg.preview.display, what="the formatted prompt")
        assert str(pg.preview_text.render()).endswith("### Input:\n2+3\n\n### Response:\n")
        assert reply.show_formatted and formatted in str(reply.render())
        await press(pilot, "f", until=lambda: not pg.preview.display, what="the formatted prompt to hide")
        # the compare view answers with every strategy, each up to end-of-text or the limit
        n = len(pg.replies)
        await press(pilot, "c", until=lambda: len(pg.replies) == n + 5 and all(r.finished for r in pg.replies),
                    what="an answer per strategy", timeout=60)
        assert all(r.reason == "done" and r.at_end is not None for r in pg.replies[n:])
        assert pg.replies[n].label == "greedy" and pg.replies[n + 1].label.startswith("temperature")
        assert all(r.formatted == ALPACA.prompt("Add 2 and 3.", "2+3") for r in pg.replies[n:])


async def test_a_classifier_run_shows_its_labels_the_bars_and_accuracy(labels_file, words_run, tmp_path):
    cfg = TrainConfig(task="classify", data=[str(labels_file)], init_from=str(words_run), out=str(tmp_path / "cls"),
                      max_steps=40, eval_interval=20, eval_batches=4, lr=5e-3, seed=4)
    app = GPTMiniApp(cfg, start_paused=True)
    notes = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        pg = main.playground
        await first_evaluation(pilot, app)
        info = main.header.info
        assert info["task"] == "classify · money / pets"
        started = app.session.record.run_started
        assert started.trainable_params < started.n_params  # the last block, the final norm and the head
        assert " of " in info["params"] and info["params"].endswith("params trainable")
        # accuracy before the first step, as counters and on the plot beside the loss
        metrics = app.session.record.latest_eval.metrics
        row = f"acc {pct(metrics['train_accuracy'])} val {pct(metrics['val_accuracy'])}"
        await wait_until(pilot, lambda: row in " ".join(stats_text(app).split()), 30, "the accuracy counters")
        await wait_until(pilot, lambda: main.plot.last_view is not None and "val_accuracy" in main.plot.last_view.metrics,
                         30, "accuracy on the plot")
        assert main.plot.metric_names == ("train_accuracy", "val_accuracy") and "val acc" in main.plot.border_subtitle
        # the Samples panel: fixed validation texts with their predicted and true labels
        await wait_until(pilot, lambda: main.samples.count == 4, 30, "four validation texts")
        shown = samples_text(app)
        assert shown.count("· true ") == 4 and shown.count("✓") + shown.count("✗") == 4
        # the playground classifies what is typed: each label's probability as bars, here and beside it
        await press(pilot, "i", until=lambda: app.focused is pg.prompt_input, what="the prompt to get focus")
        pg.prompt_input.value = "stocks fell sharply"
        await wait_until(pilot, lambda: main.probs.shown_prompt == "stocks fell sharply", 30,
                         "the label probabilities of the text typed")
        assert [c.label for c in main.probs.candidates] == ["money", "pets"]
        assert sum(c.prob for c in main.probs.candidates) == pytest.approx(1.0, abs=1e-4)
        assert main.probs.border_title == "labels · step 0" and "█" in str(main.probs.render())
        await press(pilot, "enter", until=lambda: pg.replies and pg.replies[-1].finished, what="a verdict")
        verdict = pg.replies[-1]
        assert isinstance(verdict, Verdict) and verdict.reason == "done" and verdict.weights_step == 0
        assert [r.label for r in verdict.rows] == ["money", "pets"]
        assert [r.prob for r in verdict.rows] == pytest.approx([c.prob for c in main.probs.candidates], abs=1e-5)
        assert verdict.best.label in verdict.status and "█" in str(verdict.render())
        # no sampling strategies for a classifier: the keys say so
        assert main.check_action("compare", ()) is False and main.check_action("strategy", ()) is False
        footer = main.query_one(KeyFooter)
        assert footer.shown and not {"Compare", "strategy", "Stop"} & {e.label for e in footer.shown}
        await press(pilot, "escape", until=lambda: not main.typing, what="the prompt to lose focus")
        await press(pilot, "c", until=lambda: any("only in pre-training or instruction runs" in m for _s, m in notes),
                    what="why c does nothing")
        # the run completes: the test accuracy joins the counters
        finished: list[ev.Finished] = []
        app.session.subscribe(lambda e: finished.append(e) if isinstance(e, ev.Finished) else None)
        await press(pilot, "space", until=lambda: finished, what="the run to finish", timeout=120)
        assert finished[0].reason == "completed", finished[0]
        tested = f"test {pct(finished[0].metrics['test_accuracy'])}"
        await wait_until(pilot, lambda: tested in " ".join(stats_text(app).split()), 30, "the test accuracy")

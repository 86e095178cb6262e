"""Pilot tests of the console driving a real tiny training run.

Every key and every request is followed by a wait for what it should cause (never a fixed pause):
the suite must stay green on a 2-core machine with other work running (``tests/stress.sh``).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from textual.widgets import Input
from tui_helpers import (
    checkpoint_dirs,
    current_step,
    press,
    record_notifications,
    wait_until,
)

from gptmini import events as ev
from gptmini.sample.strategies import STRATEGIES
from gptmini_tui import actions
from gptmini_tui.app import GPTMiniApp
from gptmini_tui.screens import ConfirmScreen, HelpScreen, NewRunScreen
from gptmini_tui.settings import PlaygroundSettings
from gptmini_tui.widgets.playground import Reply

pytestmark = pytest.mark.timeout(120)

SIZE = (120, 40)


async def started(pilot, app, steps: int = 3) -> None:
    await wait_until(pilot, lambda: current_step(app) >= steps, 60, f"{steps} training steps")


def replies(app) -> list[Reply]:
    return app.main.playground.replies


def log_lines(app, level: str | None = None) -> list[str]:
    return [m for _t, lvl, m in app.main.log_panel.entries if level is None or lvl == level]


async def step_while_paused(app) -> int:
    """The step a paused trainer reports after serving a request between two of its waits.

    A paused loop still serves requests; a snapshot taken through it is a round trip that proves the
    loop is alive and did not step (no fixed sleep needed to "see nothing happen").
    """
    snap = await asyncio.to_thread(app.session.trainer.snapshot, 30.0)
    return snap.step


async def test_counters_header_and_plot_follow_training(tiny_config):
    app = GPTMiniApp(tiny_config(eval_interval=20))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await started(pilot, app, 25)
        await wait_until(pilot, lambda: len(app.session.history.val) >= 1, 30, "an eval point")
        await wait_until(pilot, lambda: main.plot.last_view is not None and main.plot.last_view.n_points >= 20, 30,
                         "the plot to show the steps")  # redraws are timer-driven (<= 1 Hz, adaptive)
        info = main.header.info
        assert info["run"] == "run" and "params" in info["params"] and "tiny" in info["corpus"]
        assert info["tokenizer"].startswith("char")
        await wait_until(pilot, lambda: main.counters.state_label.state == "running", 30, "the running label")
        assert len(app.session.history) >= 25 and app.session.history.train.step[0] == 1
        assert main.plot.redraws >= 1
        assert str(main.counters.query_one("#stats").render())  # renders without error
        assert log_lines(app, "eval")
        # the x-axis toggle cycles steps -> tokens -> epochs
        await press(pilot, "a", until=lambda: main.plot.axis == "tokens", what="the tokens axis")
        await press(pilot, "a", until=lambda: main.plot.axis == "epochs", what="the epochs axis")
        await wait_until(pilot, lambda: main.plot.last_view.axis == "epochs", 30, "the plot on the epochs axis")


async def test_pause_and_resume(tiny_config):
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await started(pilot, app)
        await press(pilot, "space", until=lambda: main.counters.state_label.state == "paused", what="the paused label")
        frozen = app.session.trainer.step
        assert await step_while_paused(app) == frozen
        assert await step_while_paused(app) == frozen == app.session.trainer.step
        await press(pilot, "space", until=lambda: main.counters.state_label.state == "running",
                    what="the running label")
        await wait_until(pilot, lambda: app.session.trainer.step > frozen + 3, 30, "training to continue")


async def test_the_state_line_says_compiling_until_the_first_step(tiny_config, monkeypatch):
    import threading

    import torch

    looked = threading.Event()

    class CompiledThatWaits(torch.nn.Module):  # stands for torch.compile's module: its first call waits for the test
        def __init__(self, model, **_kw) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args, **kwargs):
            looked.wait(60)
            return self.model(*args, **kwargs)

    monkeypatch.setattr(torch, "compile", CompiledThatWaits)
    app = GPTMiniApp(tiny_config(compile=True))
    async with app.run_test(size=SIZE) as pilot:
        label = app.main.counters.state_label
        await wait_until(pilot, lambda: label.state == "running" and "compiling" in label.detail, 60,
                         "the compiling note")
        assert current_step(app) == 0
        looked.set()
        await wait_until(pilot, lambda: current_step(app) >= 1, 60, "a step")
        await wait_until(pilot, lambda: label.state == "running" and label.detail == "", 60, "the note to go")


async def test_starts_paused_and_waits_for_space(tiny_config):
    app = GPTMiniApp(tiny_config(), start_paused=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.session.state == "paused", 60, "loaded and paused")
        assert app.session.record.run_started is not None
        assert await step_while_paused(app) == 0
        await press(pilot, "space", until=lambda: current_step(app) >= 2, what="training after space")


async def test_save_writes_a_checkpoint_and_lists_it(tiny_config, tmp_path):
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await started(pilot, app, 5)
        await press(pilot, "s", until=lambda: checkpoint_dirs(tmp_path / "run"), what="a checkpoint on disk")
        await wait_until(pilot, lambda: main.checkpoints.infos, 30, "the checkpoint in the table")
        info = main.checkpoints.infos[0]
        assert info.is_latest and info.step >= 5
        manifest = json.loads((info.path / "manifest.json").read_text())
        assert manifest["step"] == info.step
        await wait_until(pilot, lambda: log_lines(app, "save"), 30, "the save in the log")


async def test_restore_rolls_the_run_and_the_plot_back(tiny_config, tmp_path):
    from tests.tui.conftest import make_text

    corpus = tmp_path / "long.txt"  # epochs of ~2,300 steps: no epoch-end save joins ours during the test
    corpus.write_text(make_text(300_000))
    app = GPTMiniApp(tiny_config(data=[str(corpus)], eval_interval=100_000))  # only our own save: one row
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await started(pilot, app, 5)
        await press(pilot, "s", until=lambda: main.checkpoints.infos, what="a checkpoint in the table")
        saved_step = main.checkpoints.infos[0].step
        await wait_until(pilot, lambda: current_step(app) > saved_step + 30, 30, "30 more steps")
        await press(pilot, "r", until=lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert main.tabs.active == "tab-ckpt"
        restored: list[tuple[int, int | None]] = []

        def probe(e):  # runs on the training thread right after the session recorded the event
            if isinstance(e, ev.CheckpointRestored):
                restored.append((e.step, app.session.history.last_step))

        app.session.subscribe(probe)
        await press(pilot, "y", until=lambda: restored, what="CheckpointRestored")
        assert restored[0] == (saved_step, saved_step)  # history cut back to the restored step at once
        steps = list(app.session.history.train.step)
        assert steps == list(range(1, len(steps) + 1))  # no duplicates, no gaps after the rewind
        await wait_until(pilot, lambda: current_step(app) > saved_step + 2, 30, "training after the restore")
        await wait_until(pilot, lambda: any("restored step" in m for m in log_lines(app)), 30, "the restore in the log")


async def test_restore_can_be_cancelled(tiny_config):
    app = GPTMiniApp(tiny_config(eval_interval=100_000))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await started(pilot, app, 3)
        await press(pilot, "s", until=lambda: main.checkpoints.infos, what="a checkpoint in the table")
        await press(pilot, "r", until=lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        before = current_step(app)
        await press(pilot, "n", until=lambda: not isinstance(app.screen, ConfirmScreen), what="the question to close")
        await wait_until(pilot, lambda: current_step(app) > before + 3, 30, "training to go on")
        assert not any("restored" in m for m in log_lines(app))


async def test_strategy_and_knob_keys_change_the_sampler_settings(tiny_config):
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        pg = app.main.playground
        await started(pilot, app, 1)
        await press(pilot, "1", until=lambda: pg.settings.strategy == "greedy", what="greedy")
        assert pg.settings.sampling().describe() == "greedy"
        await press(pilot, "2", "right_square_bracket", "right_square_bracket",
                    until=lambda: pg.settings.temperature == pytest.approx(1.2), what="T=1.2")
        assert pg.settings.strategy == "temperature"
        await wait_until(pilot, lambda: "T=1.2" in str(pg.query_one("#gen-status").render()), 30, "the status line")
        await press(pilot, "3", until=lambda: pg.settings.strategy == "top-k", what="top-k")
        k = pg.settings.top_k
        await press(pilot, "minus", until=lambda: pg.settings.top_k < k, what="a smaller k")
        s = pg.settings.sampling()
        assert s.strategy == "top-k" and s.top_k == pg.settings.top_k
        await press(pilot, "4", "minus", until=lambda: pg.settings.sampling().top_p == pytest.approx(0.85),
                    what="top-p 0.85")
        # letter and digit keys type into the prompt instead of acting while it has focus
        await press(pilot, "i", until=lambda: isinstance(app.focused, Input), what="the prompt to get focus")
        # (the prompt's text is selected on focus: typing replaces it)
        await press(pilot, "1", "s", "space", "q", until=lambda: pg.prompt_input.value.endswith("1s q"),
                    what="the keys typed into the prompt")
        assert pg.settings.strategy == "top-p" and app.is_running
        await press(pilot, "escape", until=lambda: not isinstance(app.focused, Input), what="the prompt to lose focus")


async def test_key_5_picks_min_p_and_its_knob_reaches_the_replies_and_the_distribution(tiny_config):
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        pg = main.playground
        await started(pilot, app, 3)
        pg.prompt_input.value = "the"
        await press(pilot, "5", until=lambda: pg.settings.strategy == "min-p", what="min-p")
        await press(pilot, "plus", "plus", until=lambda: pg.settings.min_p == pytest.approx(0.07), what="p=0.07")
        assert pg.settings.sampling().describe() == "min-p p=0.07 T=1"
        await wait_until(pilot, lambda: "min-p p=0.07" in str(pg.query_one("#gen-status").render()), 30,
                         "the status line")
        await wait_until(pilot, lambda: main.probs.candidates and main.probs.label == "min-p p=0.07 T=1", 30,
                         "the next-token distribution under min-p")
        # what the view shows is the min-p filter: the survivors are the tokens >= 0.07 x the top one
        top = max(c.prob for c in main.probs.candidates)
        assert all((c.filtered_prob > 0) == (c.prob >= 0.07 * top) for c in main.probs.candidates)
        await press(pilot, "i", until=lambda: isinstance(app.focused, Input), what="the prompt to get focus")
        await press(pilot, "enter", until=lambda: replies(app) and replies(app)[-1].finished, what="a finished reply")
        assert replies(app)[-1].reason == "done" and replies(app)[-1].label == "min-p p=0.07 T=1"


async def test_enter_streams_a_labelled_reply_while_training_continues(tiny_config):
    # frequent evals re-trigger the debounced next-token request faster than its delay
    app = GPTMiniApp(tiny_config(eval_interval=10, eval_batches=1))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await started(pilot, app, 5)
        main.playground.set_strategy("greedy")
        await press(pilot, "i", until=lambda: isinstance(app.focused, Input), what="the prompt to get focus")
        main.playground.prompt_input.value = "the model"
        step_before = current_step(app)
        await press(pilot, "enter", until=lambda: replies(app) and replies(app)[-1].finished, what="a finished reply")
        reply = replies(app)[-1]
        assert reply.reason == "done", reply.status
        assert reply.n_tokens > 0 and reply.text
        # labelled with the step of the weights it came from: a live snapshot (reused while under 2 s old, so
        # on a fast machine it can predate the key press by a few steps)
        assert reply.label == "greedy" and reply.weights_step is not None
        assert 1 <= reply.weights_step <= current_step(app)
        await wait_until(pilot, lambda: current_step(app) > step_before + 5, 30, "training during sampling")
        # evals every 10 steps keep re-triggering the (debounced) request; it must still be answered
        await wait_until(pilot, lambda: main.probs.candidates and main.probs.label == "greedy", 30,
                         "next-token candidates under greedy")
        cands = main.probs.candidates
        assert len(cands) == 10 and abs(sum(c.filtered_prob for c in cands) - 1.0) < 0.05


async def test_refreshing_the_distribution_at_once_and_repeatedly_is_answered(tiny_config):
    """``d`` asks for the distribution now (no delay). A zero-delay Textual timer crashed the app under
    load (``ZeroDivisionError`` in its timer); a burst of presses must end in one answer, app alive."""
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await started(pilot, app, 3)
        main.playground.prompt_input.value = "the"
        await wait_until(pilot, lambda: main.probs.candidates, 30, "the first distribution")
        answered = main.probs.weights_step
        await press(pilot, *["d"] * 20, until=lambda: main.probs.weights_step != answered and main.probs.candidates,
                    what="a distribution from newer weights")
        assert app.is_running


async def test_the_next_token_view_follows_the_live_weights_without_a_key(tiny_config, tmp_path):
    """The view showed the step it was first computed at ('next token · step 1' at step 90) until a key was
    pressed; it follows the training now (debounced: the session's snapshot, at most every few seconds)."""
    from tests.tui.conftest import make_text

    corpus = tmp_path / "long.txt"  # epochs of ~7,000 steps: no evaluation asks for a new distribution
    corpus.write_text(make_text(1_000_000))
    app = GPTMiniApp(tiny_config(data=[str(corpus)], eval_interval=100_000))
    async with app.run_test(size=SIZE) as pilot:
        probs = app.main.probs
        await started(pilot, app, 3)
        app.main.playground.prompt_input.value = "the"
        await wait_until(pilot, lambda: probs.candidates and probs.weights_step is not None, 30, "a distribution")
        first = probs.weights_step
        await wait_until(pilot, lambda: current_step(app) > first + 20, 30, "20 more steps")
        await wait_until(pilot, lambda: probs.weights_step is not None and probs.weights_step > first, 30,
                         "the view to show newer weights")
        assert probs.border_title == f"next token · step {probs.weights_step:,}" and probs.candidates
        assert not app.session.history.val  # no evaluation did it


async def test_compare_runs_every_strategy_and_x_stops(tiny_config):
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        pg = app.main.playground
        await started(pilot, app, 3)
        pg.prompt_input.value = "the"
        n = len(STRATEGIES)
        await press(pilot, "c", until=lambda: len(replies(app)) == n and all(r.finished for r in replies(app)),
                    what="a reply per strategy", timeout=60)
        labels = [r.label for r in replies(app)]
        assert labels[0] == "greedy" and labels[1].startswith("temperature")
        assert labels[2].startswith("top-k k=") and labels[3].startswith("top-p p=")
        assert labels[4].startswith("min-p p=")
        # a long generation stopped with x
        pg.settings = PlaygroundSettings(strategy="temperature", max_new_tokens=100_000)
        await press(pilot, "i", until=lambda: isinstance(app.focused, Input), what="the prompt to get focus")
        await press(pilot, "enter", "escape",
                    until=lambda: len(replies(app)) == n + 1 and replies(app)[-1].n_tokens > 0,
                    what="tokens of the long reply")
        await press(pilot, "x", until=lambda: replies(app)[-1].finished, what="the stopped reply")
        assert replies(app)[-1].reason == "stopped"
        await wait_until(pilot, lambda: not pg.generating, 30, "the playground to be idle")


async def test_engine_errors_are_shown_and_the_app_survives(tiny_config):
    # a real NaN: absurd learning rate, no warmup, no clipping
    app = GPTMiniApp(tiny_config(lr=1e10, warmup_steps=0, grad_clip=0.0))
    notes = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await wait_until(pilot, lambda: app.session.state == "error", 60, "the error state")
        await wait_until(pilot, lambda: log_lines(app, "error"), 30, "the error in the log")
        assert "[nan]" in log_lines(app, "error")[0]
        await wait_until(pilot, lambda: any(sev == "error" for sev, _m in notes), 30, "an error notification")
        await wait_until(pilot, lambda: "loss is NaN" in main.counters.state_label.detail, 30, "the error detail")
        # still usable: keys work, help opens, an error posted through the session's listeners shows too
        await press(pilot, "2", until=lambda: main.playground.settings.strategy == "temperature", what="temperature")
        app.session._on_event(ev.Error(message="disk on fire", error_kind="checkpoint", step=1, fatal=False))
        await wait_until(pilot, lambda: any("disk on fire" in m for m in log_lines(app)), 30, "the relayed error")
        await press(pilot, "question_mark", until=lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        await press(pilot, "escape", until=lambda: not isinstance(app.screen, HelpScreen), what="help to close")
        assert app.is_running


async def test_a_data_error_at_startup_leaves_a_usable_app(tiny_config, tmp_path):
    app = GPTMiniApp(tiny_config(data=[str(tmp_path / "missing.txt")]))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await wait_until(pilot, lambda: app.session.state == "error", 60, "the error state")
        await wait_until(pilot, lambda: log_lines(app, "error"), 30, "the error in the log")
        errors = log_lines(app, "error")
        assert "[data]" in errors[0] and "missing.txt" in errors[0]
        assert main.check_action("save", ()) is None and main.check_action("new_run", ()) is True
        await press(pilot, "n", until=lambda: isinstance(app.screen, NewRunScreen), what="the new-run form")
        await press(pilot, "escape", until=lambda: app.screen is main, what="the form to close")
        assert app.is_running


async def test_quit_saves_the_last_step_trained_and_exits(tiny_config, tmp_path):
    app = GPTMiniApp(tiny_config(eval_interval=100_000))  # no automatic saves
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, 5)
        assert app.session.steps_since_save > 0
        await press(pilot, "q", until=lambda: not app.is_running, what="the app to exit")
    assert app.return_code == 0
    saved = app.session.record.last_saved
    assert saved is not None and saved.reason == "quit"
    assert saved.step == app.session.trainer.step == current_step(app)  # nothing trained after the save
    assert checkpoint_dirs(tmp_path / "run")[-1].name == f"step-{saved.step:06d}"
    assert app.session.trainer.state == "finished" and app.quit_report == f"saved {saved.path}"


async def test_new_run_form_validates_then_replaces_the_run(tiny_config, tmp_path, corpus_file):
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, 3)
        old_trainer = app.session.trainer
        await press(pilot, "n", until=lambda: isinstance(app.screen, NewRunScreen), what="the form")
        form = app.screen
        await wait_until(pilot, lambda: form.query("#f-d_model") and form.result_config is not None, 30, "the fields")
        form.query_one("#f-d_model", Input).value = "30"
        form.query_one("#f-n_heads", Input).value = "4"
        assert not form.validate_form() and "divisible" in form.error  # the model's shape rules, inline
        form.query_one("#f-epochs", Input).value = "zero"
        assert not form.validate_form() and "whole number" in form.error
        form.query_one("#f-epochs", Input).value = "0"
        assert not form.validate_form() and "--epochs" in form.error
        form.query_one("#f-epochs", Input).value = "1"
        form.query_one("#f-d_model", Input).value = "32"
        form.query_one("#f-max_steps", Input).value = ""
        form.query_one("#f-out", Input).value = str(tmp_path / "second")
        form.query_one("#f-run_name", Input).value = "second"
        assert form.validate_form(), form.error
        # an epoch end saves a checkpoint: make sure the question has unsaved steps to ask about
        await wait_until(pilot, lambda: old_trainer.steps_since_save > 3, 30, "unsaved steps")
        await press(pilot, "ctrl+s", until=lambda: isinstance(app.screen, ConfirmScreen),
                    what="the unsaved-progress question")
        await press(pilot, "d", until=lambda: app.session.trainer is not old_trainer, what="a new trainer")  # discard
        await wait_until(pilot, lambda: app.session.record.run_started is not None
                         and app.session.record.run_started.run_name == "second", 60, "the new run to start")
        await started(pilot, app, 2)
        assert old_trainer.state == "finished"
        started_event = app.session.record.run_started
        assert started_event.model_config["n_heads"] == 4 and started_event.epochs == 1
        assert app.session.history.train.step[0] == 1  # the plot starts over


async def test_every_action_is_bound_described_and_in_the_palette(tiny_config):
    """The action table is the one source: keys, footer, help and palette all come from it."""
    from gptmini_tui.screens.main import MainScreen

    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await started(pilot, app, 1)
        for a in actions.ACTIONS:
            assert callable(getattr(MainScreen, f"action_{a.name}", None)), a.name
        bound = {b.action for b in main.BINDINGS}
        assert bound == {a.action for a in actions.ACTIONS}
        rows = {k for _s, section in actions.help_sections() for k, _d in section}
        for key in ("space", "s", "r", "n", "c", "x", "1", "[", "+, =", "a", "q", "?", "i, /", "ctrl+p"):
            assert key in rows, key
        provider = actions.ActionCommands(main)
        titles = [hit.text async for hit in provider.discover()]
        for title in ("Save checkpoint", "Restore checkpoint", "New run", "Compare strategies", "Strategy: top-p"):
            assert title in titles
        await press(pilot, "question_mark", until=lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        await press(pilot, "escape", until=lambda: not isinstance(app.screen, HelpScreen), what="help to close")


async def test_a_save_that_failed_during_the_run_makes_quit_exit_non_zero(tiny_config, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gptmini.ckpt.writer.save_checkpoint", disk_full)
    app = GPTMiniApp(tiny_config(save_interval=3, eval_interval=100_000))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.session.record.save_errors, 60, "a failed save")
        await wait_until(pilot, lambda: any("No space left" in m for m in log_lines(app, "error")), 30,
                         "the failure in the log")
        await press(pilot, "q", until=lambda: not app.is_running, what="the app to exit")
    assert app.return_code == 1 and "No space left on device" in app.quit_report

"""Pilot tests of the console driving a real tiny training run."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input
from tui_helpers import checkpoint_dirs, current_step, press, wait_until

from gptmini import events as ev
from gptmini_tui.app import GPTMiniApp
from gptmini_tui.screens import ConfirmScreen, HelpScreen, NewRunScreen
from gptmini_tui.widgets.playground import Reply

pytestmark = pytest.mark.timeout(60)

SIZE = (120, 40)


async def started(pilot, app, steps: int = 3) -> None:
    await wait_until(pilot, lambda: current_step(app) >= steps, 30, f"{steps} training steps")


def replies(app) -> list[Reply]:
    return app.playground.replies


async def test_counters_header_and_plot_follow_training(tiny_config):
    app = GPTMiniApp(tiny_config(eval_interval=20))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, 25)
        await wait_until(pilot, lambda: len(app.history.val_loss) >= 1, 20, "an eval point")
        await wait_until(pilot, lambda: app.plot.last_view is not None and app.plot.last_view.n_points >= 20, 10,
                         "the plot to show the steps")  # redraws are timer-driven (<= 2 Hz, adaptive)
        info = app.header.info
        assert info["run"] == "run" and "params" in info["params"] and "tiny" in info["corpus"]
        assert info["tokenizer"].startswith("char")
        assert app.counters.state_label.state == "running"
        assert len(app.history) >= 25 and app.history.step[0] == 1
        assert app.plot.redraws >= 1 and app.plot.last_view.n_points >= 20
        stats = str(app.counters.query_one("#stats").render())  # rendered table
        assert stats  # renders without error
        assert any("eval" == level for _t, level, _m in app.log_panel.entries)
        # the x-axis toggle cycles steps -> tokens -> epochs
        await press(pilot, "a")
        assert app.plot.axis == "tokens"
        await press(pilot, "a")
        assert app.plot.axis == "epochs"
        await wait_until(pilot, lambda: app.plot.last_view.axis == "epochs", 5, "the epochs axis")


async def test_pause_and_resume(tiny_config):
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await press(pilot, "space")
        await wait_until(pilot, lambda: app.counters.state_label.state == "paused", 10, "paused label")
        frozen = app.trainer.step
        await pilot.pause(0.5)
        assert app.trainer.step == frozen
        await press(pilot, "space")
        await wait_until(pilot, lambda: app.counters.state_label.state == "running", 10, "running label")
        await wait_until(pilot, lambda: app.trainer.step > frozen + 3, 10, "training to continue")


async def test_starts_paused_and_waits_for_space(tiny_config):
    app = GPTMiniApp(tiny_config(), start_paused=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state == "paused", 30, "loaded and paused")
        assert app.run_started is not None
        await pilot.pause(0.3)
        assert app.trainer.step == 0
        await press(pilot, "space")
        await started(pilot, app, 2)


async def test_save_writes_a_checkpoint_and_lists_it(tiny_config, tmp_path):
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, 5)
        await press(pilot, "s")
        await wait_until(pilot, lambda: checkpoint_dirs(tmp_path / "run"), 15, "a checkpoint on disk")
        await wait_until(pilot, lambda: app.checkpoints.infos, 10, "the checkpoint in the table")
        info = app.checkpoints.infos[0]
        assert info.is_latest and info.step >= 5
        manifest = json.loads((info.path / "manifest.json").read_text())
        assert manifest["step"] == info.step
        assert any(lvl == "save" for _t, lvl, _m in app.log_panel.entries)


async def test_restore_rolls_the_run_and_the_plot_back(tiny_config, tmp_path):
    from tests.tui.conftest import make_text

    corpus = tmp_path / "long.txt"  # epochs of ~2,300 steps: no epoch-end save joins ours during the test
    corpus.write_text(make_text(300_000))
    app = GPTMiniApp(tiny_config(data=[str(corpus)], eval_interval=100_000))  # only our own save: one row
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, 5)
        await press(pilot, "s")
        await wait_until(pilot, lambda: app.checkpoints.infos, 15, "a checkpoint in the table")
        saved_step = app.checkpoints.infos[0].step
        await wait_until(pilot, lambda: current_step(app) > saved_step + 30, 20, "30 more steps")
        await press(pilot, "r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation")
        assert app.tabs.active == "tab-ckpt"
        restored: list[tuple[int, int | None]] = []

        def probe(e):  # runs on the training thread right after the bridge handled the event
            if isinstance(e, ev.CheckpointRestored):
                restored.append((e.step, app.history.last_step))

        app.trainer.subscribe(probe)
        await press(pilot, "y")
        await wait_until(pilot, lambda: restored, 15, "CheckpointRestored")
        assert restored[0] == (saved_step, saved_step)  # history cut back to the restored step at once
        steps = list(app.history.step)
        assert steps == list(range(1, len(steps) + 1))  # no duplicates, no gaps after the rewind
        await wait_until(pilot, lambda: current_step(app) > saved_step + 2, 15, "training after the restore")
        await wait_until(pilot, lambda: any("restored step" in m for _t, _l, m in app.log_panel.entries), 5,
                         "the restore in the log")


async def test_restore_can_be_cancelled(tiny_config):
    app = GPTMiniApp(tiny_config(eval_interval=100_000))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, 3)
        await press(pilot, "s")
        await wait_until(pilot, lambda: app.checkpoints.infos, 15, "a checkpoint in the table")
        await press(pilot, "r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation")
        before = current_step(app)
        await press(pilot, "n")
        assert not isinstance(app.screen, ConfirmScreen)
        await wait_until(pilot, lambda: current_step(app) > before + 3, 10, "training to go on")
        assert not any("restored" in m for _t, _l, m in app.log_panel.entries)


async def test_strategy_and_knob_keys_change_the_sampler_settings(tiny_config):
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, 1)
        await press(pilot, "1")
        assert app.settings.strategy == "greedy"
        assert app.settings.sampling().describe() == "greedy"
        await press(pilot, "2", "right_square_bracket", "right_square_bracket")
        assert app.settings.strategy == "temperature" and app.settings.temperature == pytest.approx(1.2)
        assert "T=1.2" in str(app.playground.query_one("#gen-status").render())
        await press(pilot, "3")
        k = app.settings.top_k
        await press(pilot, "minus")
        assert app.settings.top_k < k
        s = app.settings.sampling()
        assert s.strategy == "top-k" and s.top_k == app.settings.top_k
        await press(pilot, "4", "minus")
        assert app.settings.sampling().top_p == pytest.approx(0.85)
        # letter and digit keys type into the prompt instead of acting while it has focus
        await press(pilot, "i")
        await wait_until(pilot, lambda: isinstance(app.focused, Input), 5, "the prompt to get focus")
        await press(pilot, "1", "s", "space", "q")
        assert app.settings.strategy == "top-p"
        assert app.playground.prompt_input.value.endswith("1s q")
        assert app.is_running
        await press(pilot, "escape")
        assert not isinstance(app.focused, Input)


async def test_enter_streams_a_labelled_reply_while_training_continues(tiny_config):
    # frequent evals re-trigger the debounced next-token request faster than its delay
    app = GPTMiniApp(tiny_config(eval_interval=10, eval_batches=1))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, 5)
        app.settings = app.settings.with_strategy("greedy")
        await press(pilot, "i")
        await wait_until(pilot, lambda: isinstance(app.focused, Input), 5, "the prompt to get focus")
        app.playground.prompt_input.value = "the model"
        step_before = current_step(app)
        await press(pilot, "enter")
        await wait_until(pilot, lambda: replies(app) and replies(app)[-1].finished, 30, "a finished reply")
        reply = replies(app)[-1]
        assert reply.reason == "done", reply.status
        assert reply.n_tokens > 0 and reply.text
        assert reply.label == "greedy" and reply.weights_step is not None and reply.weights_step >= step_before
        await wait_until(pilot, lambda: current_step(app) > step_before + 5, 10, "training during sampling")
        # evals every 50 steps keep re-triggering the (debounced) request; it must still be answered
        await wait_until(pilot, lambda: app.probs.candidates, 10, "next-token candidates")
        cands = app.probs.candidates
        assert len(cands) == 10 and abs(sum(c.filtered_prob for c in cands) - 1.0) < 0.05


async def test_compare_runs_every_strategy_and_x_stops(tiny_config):
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, 3)
        app.playground.prompt_input.value = "the"
        await press(pilot, "c")
        await wait_until(pilot, lambda: len(replies(app)) == 4 and all(r.finished for r in replies(app)), 40,
                         "four compared replies")
        labels = [r.label for r in replies(app)]
        assert labels[0] == "greedy" and labels[1].startswith("temperature")
        assert labels[2].startswith("top-k k=") and labels[3].startswith("top-p p=")
        # a long generation stopped with x
        app.settings = app.settings.__class__(strategy="temperature", max_new_tokens=100_000)
        await press(pilot, "i")
        await wait_until(pilot, lambda: isinstance(app.focused, Input), 5, "the prompt to get focus")
        await press(pilot, "enter", "escape")
        await wait_until(pilot, lambda: len(replies(app)) == 5 and replies(app)[-1].n_tokens > 0, 20, "tokens")
        await press(pilot, "x")
        await wait_until(pilot, lambda: replies(app)[-1].finished, 10, "the stopped reply")
        assert replies(app)[-1].reason == "stopped"
        assert not app.generating


async def test_engine_errors_are_shown_and_the_app_survives(tiny_config):
    # a real NaN: absurd learning rate, no warmup, no clipping
    app = GPTMiniApp(tiny_config(lr=1e10, warmup_steps=0, grad_clip=0.0))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state == "error", 30, "the error state")
        errors = [m for _t, lvl, m in app.log_panel.entries if lvl == "error"]
        assert errors and "[nan]" in errors[0]
        assert any(n.severity == "error" for n in app._notifications)
        assert "loss is NaN" in app.counters.state_label.detail
        # still usable: keys work, help opens, an error posted through the bridge shows too
        await press(pilot, "2")
        assert app.settings.strategy == "temperature"
        app.bridge(ev.Error(message="disk on fire", error_kind="checkpoint", step=1, fatal=False))
        await wait_until(pilot, lambda: any("disk on fire" in m for _t, _l, m in app.log_panel.entries), 5,
                         "the bridged error")
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await press(pilot, "escape")
        assert app.is_running


async def test_a_data_error_at_startup_leaves_a_usable_app(tiny_config, tmp_path):
    app = GPTMiniApp(tiny_config(data=[str(tmp_path / "missing.txt")]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state == "error", 30, "the error state")
        errors = [m for _t, lvl, m in app.log_panel.entries if lvl == "error"]
        assert errors and "[data]" in errors[0] and "missing.txt" in errors[0]
        assert app.check_action("save", ()) is None and app.check_action("new_run", ()) is True
        await press(pilot, "n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen), 5, "the new-run form")
        await press(pilot, "escape")
        assert app.is_running


async def test_quit_saves_unsaved_progress_and_exits(tiny_config, tmp_path):
    app = GPTMiniApp(tiny_config(eval_interval=100_000))  # no automatic saves
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, 5)
        assert app.trainer.steps_since_save > 0
        await press(pilot, "q")
        await wait_until(pilot, lambda: not app.is_running, 20, "the app to exit")
    assert app.return_code == 0
    assert app.bridge.last_saved is not None and app.bridge.last_saved.reason == "quit"
    assert checkpoint_dirs(tmp_path / "run")
    assert app._trainer_done.is_set() and app.trainer.state == "finished"


async def test_new_run_form_validates_then_replaces_the_run(tiny_config, tmp_path, corpus_file):
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, 3)
        old_trainer = app.trainer
        await press(pilot, "n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen), 5, "the form")
        form = app.screen
        await wait_until(pilot, lambda: form.query("#f-d_model") and form.result_config is not None, 5, "the fields")
        form.query_one("#f-d_model", Input).value = "30"
        form.query_one("#f-n_heads", Input).value = "4"
        await pilot.pause(0.05)
        assert not form.validate_form() and "divisible" in form.error  # the model's shape rules, inline
        form.query_one("#f-epochs", Input).value = "zero"
        await pilot.pause(0.05)
        assert not form.validate_form() and "whole number" in form.error
        form.query_one("#f-epochs", Input).value = "0"
        await pilot.pause(0.05)
        assert not form.validate_form() and "--epochs" in form.error
        form.query_one("#f-epochs", Input).value = "1"
        form.query_one("#f-d_model", Input).value = "32"
        form.query_one("#f-max_steps", Input).value = ""
        form.query_one("#f-out", Input).value = str(tmp_path / "second")
        form.query_one("#f-run_name", Input).value = "second"
        await pilot.pause(0.05)
        assert form.validate_form(), form.error
        # an epoch end saves a checkpoint: make sure the question has unsaved steps to ask about
        await wait_until(pilot, lambda: old_trainer.steps_since_save > 3, 10, "unsaved steps")
        await press(pilot, "ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "unsaved-progress question")
        await press(pilot, "d")  # discard
        await wait_until(pilot, lambda: app.trainer is not old_trainer, 20, "a new trainer")
        await wait_until(pilot, lambda: app.run_started is not None and app.run_started.run_name == "second", 30,
                         "the new run to start")
        await started(pilot, app, 2)
        assert old_trainer.state == "finished"
        assert app.run_started.model_config["n_heads"] == 4 and app.run_started.epochs == 1
        assert app.history.step[0] == 1  # the plot starts over


async def test_help_lists_every_binding_and_palette_has_commands(tiny_config):
    app = GPTMiniApp(tiny_config())
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, 1)
        sections = dict(app.help_sections())
        keys = {k for rows in sections.values() for k, _d in rows}
        for key in ("space", "s", "r", "n", "c", "x", "1", "[", "+", "a", "q", "?"):
            assert any(key in k.split(", ") for k in keys), key
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Save checkpoint", "Restore checkpoint", "New run", "Compare strategies", "Strategy: top-p"):
            assert title in titles
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await press(pilot, "escape")
        assert not isinstance(app.screen, HelpScreen)

"""Attach mode (no trainer in the app) and snapshot tests of the whole screen.

Snapshots use attach mode on a static ``metrics.jsonl`` written here with
fixed timestamps and a fixed clock, so every pixel is deterministic.
"""

from __future__ import annotations

import threading

import pytest
from tui_helpers import (
    T0,
    checkpoint_dirs,
    press,
    record_notifications,
    wait_until,
    write_static_run,
)

from gptmini_tui.actions import ATTACHED_REASON
from gptmini_tui.app import GPTMiniApp
from gptmini_tui.screens.help import HelpScreen

pytestmark = pytest.mark.timeout(120)

def static_app(tmp_path) -> GPTMiniApp:
    run_dir = tmp_path / "demo"
    write_static_run(run_dir)
    return GPTMiniApp(attach=run_dir, clock=lambda: T0 + 100)


async def _loaded(pilot) -> None:
    app = pilot.app
    main = app.main
    await wait_until(pilot, lambda: len(app.session.history) == 240 and app.session.state == "paused", 30,
                     "the static run")
    await wait_until(pilot, lambda: main.counters.state_label.state == "paused", 30, "the paused label")
    main.plot.maybe_redraw(force=True)
    await wait_until(pilot, lambda: main.plot.up_to_date, 30, "the plot")
    # the prompt was filled from the run's sample; its (debounced) distribution request must have answered
    await wait_until(pilot, lambda: main.probs.message.startswith("no checkpoint"), 30, "the probs panel")
    await wait_until(pilot, lambda: main.counters._step is not None and main.counters._step.step == 240, 30,
                     "the counters")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_snapshot_attached_run(snap_compare, tmp_path, size):
    assert snap_compare(static_app(tmp_path), terminal_size=size, run_before=_loaded)


def test_snapshot_help_screen(snap_compare, tmp_path):
    async def run_before(pilot):
        await _loaded(pilot)
        await press(pilot, "question_mark", until=lambda: isinstance(pilot.app.screen, HelpScreen),
                    what="the help screen")
        await wait_until(pilot, lambda: pilot.app.screen.query("#help-table"), 30, "the help table")

    assert snap_compare(static_app(tmp_path), terminal_size=(80, 24), run_before=run_before)


async def test_attach_static_run_shows_history_and_disables_controls(tmp_path):
    app = static_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        main = app.main
        await _loaded(pilot)
        assert main.header.info["run"] == "demo"
        assert ATTACHED_REASON in str(main.notice.render())
        assert len(app.session.history.val) == 4
        for action in ("toggle_pause", "save", "restore", "new_run"):
            assert main.check_action(action, ()) is False  # not in the footer: they belong to the trainer
        assert main.checkpoints.save_button.disabled and main.checkpoints.restore_button.disabled
        # ... and their keys say so instead of doing nothing
        notes = record_notifications(app)
        await press(pilot, "s", until=lambda: notes, what="a notification for s")
        assert "Save: attached: controls belong to the training process" in notes[0][1]
        await press(pilot, "space", until=lambda: len(notes) == 2, what="a notification for space")
        assert app.screen is main and app.session.trainer is None
        # the playground explains that there is nothing to sample yet
        main.playground.prompt_input.value = "RO"
        main.playground.generate("RO", ["greedy"])
        await wait_until(pilot, lambda: main.playground.replies and main.playground.replies[-1].finished, 30,
                         "the reply")
        reply = main.playground.replies[-1]
        assert reply.reason == "error" and "no checkpoint" in reply.status
        assert app.session.trainer is None and app.screen is main


async def test_attach_follows_a_live_run_and_samples_its_newest_checkpoint(tiny_config, tmp_path):
    from gptmini.train.engine import Trainer

    run_dir = tmp_path / "run"
    trainer = Trainer(tiny_config(max_steps=100_000, eval_interval=100, save_interval=500, keep_last=100))
    thread = threading.Thread(target=trainer.run, daemon=True)
    thread.start()
    try:
        app = GPTMiniApp(attach=run_dir, attach_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            main = app.main
            pg = main.playground
            await wait_until(pilot, lambda: app.session.record.run_started is not None, 60,
                             "RunStarted from metrics.jsonl")
            await wait_until(pilot, lambda: len(app.session.history) >= 20, 60, "steps from metrics.jsonl")
            await wait_until(pilot, lambda: main.checkpoints.infos, 60, "a checkpoint listed")
            pg.prompt_input.value = "the"
            await press(pilot, "1", until=lambda: pg.settings.strategy == "greedy", what="greedy")
            pg.generate("the")
            await wait_until(pilot, lambda: pg.replies[-1].finished, 60, "a reply")
            first = pg.replies[-1]
            assert first.reason == "done", first.status
            await wait_until(pilot, lambda: first.weights_step in {i.step for i in main.checkpoints.infos}, 60,
                             "the sampled checkpoint in the listing")
            # once the run saves a newer checkpoint, the next reply samples from it
            await wait_until(pilot, lambda: max(i.step for i in main.checkpoints.infos) > first.weights_step, 60,
                             "a newer checkpoint")
            pg.generate("the")
            await wait_until(pilot, lambda: pg.replies[-1].finished, 60, "a second reply")
            assert pg.replies[-1].weights_step > first.weights_step
            assert app.session.trainer is None
    finally:
        trainer.stop(save=False)
        thread.join(30)
    assert checkpoint_dirs(run_dir)

"""Attach mode (no trainer in the app) and snapshot tests of the whole screen.

Snapshots use attach mode on a static ``metrics.jsonl`` written here with
fixed timestamps and a fixed clock, so every pixel is deterministic.
"""

from __future__ import annotations

import json
import math
import threading

import pytest
from tui_helpers import checkpoint_dirs, press, record_notifications, wait_until

from gptmini import events as ev
from gptmini_tui.app import GPTMiniApp
from gptmini_tui.screens.help import HelpScreen
from gptmini_tui.screens.main import ATTACHED_REASON

pytestmark = pytest.mark.timeout(120)

T0 = 1_700_000_000.0  # fixed wall clock for the static run


def write_static_run(run_dir, steps: int = 240) -> None:
    """A plausible finished-looking run: loss curve with noise, evals, a sample, paused at the end."""
    run_dir.mkdir(parents=True, exist_ok=True)
    bpe = 80
    events: list[ev.Event] = [
        ev.StateChanged(state="starting", step=0, time=T0),
        ev.RunStarted(
            run_name="demo", run_dir=str(run_dir), time=T0 + 1,
            model_config={"n_layers": 4, "n_heads": 4, "d_model": 128, "context_length": 128, "vocab_size": 65},
            n_params=812_160, corpus="tiny-shakespeare", corpus_bytes=1_115_394, train_tokens=1_003_854,
            val_tokens=111_540, tokenizer="char", vocab_size=65, device="cpu", dtype="float32", batch_size=16,
            grad_accum=1, world_size=1, context_length=128, epochs=3, batches_per_epoch=bpe, total_steps=3 * bpe,
            start_step=0,
        ),
        ev.StateChanged(state="running", step=0, time=T0 + 2),
    ]
    smooth = None
    for s in range(1, steps + 1):
        loss = 1.6 + 2.6 * math.exp(-s / 45) + 0.12 * math.sin(s * 1.7) * math.cos(s * 0.31)
        smooth = loss if smooth is None else 0.9 * smooth + 0.1 * loss
        epoch, batch = (s - 1) // bpe + 1, (s - 1) % bpe + 1
        events.append(ev.Step(
            step=s, epoch=epoch, batch=batch, batches_per_epoch=bpe, total_steps=3 * bpe,
            tokens_seen=s * 2048, loss=loss, loss_smooth=smooth, lr=1e-3 * min(1.0, s / 12), grad_norm=0.8,
            tok_per_s=20480.0, eta_s=(3 * bpe - s) * 0.1, time=T0 + 2 + 0.1 * s,
        ))
        if s % 60 == 0:
            val = 1.7 + 2.6 * math.exp(-s / 50)
            events.append(ev.Eval(step=s, epoch=epoch, tokens_seen=s * 2048, val_loss=val, val_ppl=math.exp(val),
                                  train_loss=smooth, best=True, time=T0 + 2.05 + 0.1 * s))
            events.append(ev.Sample(step=s, prompt="ROMEO:", text=" the king is not the", time=T0 + 2.06 + 0.1 * s))
    events.append(ev.StateChanged(state="paused", step=steps, time=T0 + 3 + 0.1 * steps))
    with (run_dir / "metrics.jsonl").open("w") as fh:
        for e in events:
            fh.write(json.dumps(e.to_record()) + "\n")


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
    from gptmini.engine import Trainer

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

"""Fast unit tests of the console's building blocks (no app, no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gptmini import events as ev
from gptmini import fmt
from gptmini.history import LossHistory, ViewOptions, downsample, moving_average
from gptmini_tui.bridge import EngineBridge
from gptmini_tui.messages import engine, engine_message
from gptmini_tui.settings import PlaygroundSettings
from gptmini_tui.widgets.playground import Playground


def step(i: int, loss: float = 2.0, bpe: int = 100) -> ev.Step:
    return ev.Step(step=i, epoch=(i - 1) // bpe + 1, batch=(i - 1) % bpe + 1, batches_per_epoch=bpe,
                   total_steps=10 * bpe, tokens_seen=i * 128, loss=loss, loss_smooth=loss, lr=1e-3,
                   grad_norm=1.0, tok_per_s=1000.0, eta_s=1.0)


def test_history_keeps_everything_and_downsamples_to_the_width():
    h = LossHistory()
    for i in range(1, 100_001):
        h.add_step(i, i * 128, i / 1000, 3.0 + math.sin(i), 3.0)
    assert len(h) == 100_000
    view = h.view(ViewOptions("steps", buckets=100))
    assert view.n_points == 100_000
    assert len(view.smooth_x) == 100 and len(view.raw_x) == 200  # a min and a max per bucket
    assert min(view.raw_y) == pytest.approx(2.0, abs=1e-3) and max(view.raw_y) == pytest.approx(4.0, abs=1e-3)
    tokens = h.view(ViewOptions("tokens", buckets=10))
    assert tokens.smooth_x[-1] > 10_000_000


def test_history_truncates_on_restore_and_on_repeated_steps():
    h = LossHistory()
    for i in range(1, 101):
        h.add_step(i, i, i, 1.0, 1.0)
        if i % 10 == 0:
            h.add_eval(i, i, i, 0.5)
    v0 = h.version
    h.truncate_after(42)
    assert list(h.train.step)[-1] == 42 and list(h.val.step) == [10, 20, 30, 40] and h.version > v0
    h.add_step(30, 30, 30, 1.0, 1.0)  # a resume from an older step drops the stale tail by itself
    assert list(h.train.step) == list(range(1, 31))


def test_views_smooth_over_a_window_zoom_to_the_last_steps_and_put_wall_time_on_x():
    h = LossHistory()
    for i in range(1, 1001):
        h.add_step(i, i * 64, i / 100, 2.0 + (1.0 if i % 2 else -1.0), 9.0, time=1000.0 + 0.5 * i)
        if i % 100 == 0:
            h.add_eval(i, i * 64, i / 100, 1.5, time=1000.0 + 0.5 * i)
    engine = h.view(ViewOptions(buckets=2000))
    assert set(engine.smooth_y) == {9.0}  # smooth=0: the engine's own running average
    windowed = h.view(ViewOptions(buckets=2000, smooth=10))
    assert windowed.smooth_y[-1] == pytest.approx(2.0) and windowed.raw_y[0] == 3.0  # raw stays raw
    zoomed = h.view(ViewOptions(buckets=2000, after_step=900))
    assert zoomed.n_points == 100 and min(zoomed.raw_x) == 901 and zoomed.val_x == [1000.0]
    timed = h.view(ViewOptions("time", buckets=2000))
    assert timed.raw_x[0] == 0.0 and timed.val_x[-1] == pytest.approx(499.5)  # seconds since the first step
    assert moving_average(np.array([1.0, np.nan, 3.0, 5.0]), 2).tolist() == [1.0, 1.0, 3.0, 4.0]


def test_downsample_skips_non_finite_losses():
    x = np.arange(10, dtype=float)
    raw = np.array([1, 2, np.nan, 4, 5, np.inf, 7, 8, 9, 10], dtype=float)
    rx, ry, sx, sy = downsample(x, raw, raw, buckets=100)
    assert all(math.isfinite(v) for v in ry + sy) and len(ry) == 8


def test_bridge_coalesces_steps_and_posts_one_message_class_per_event_type():
    posted = []
    bridge = EngineBridge(posted.append, min_interval=10.0)
    for i in range(1, 5001):
        bridge(step(i))
    assert len(posted) == 1 and isinstance(posted[0], engine(ev.Step))  # the rest wait (the UI reads the record)
    a, b = engine_message(step(1)), engine_message(step(2))
    assert b.can_replace(a)
    saved = ev.CheckpointSaved(step=1, path="p", reason="manual", best=False, seconds=0.1)
    assert not engine_message(saved).can_replace(engine_message(saved))  # nothing that must arrive is replaced
    bridge(saved)
    assert type(posted[-1]) is engine(ev.CheckpointSaved) and posted[-1].event is saved
    # every engine event type has its own message class, with a handler name of its own
    classes = {engine(cls) for cls in ev.EVENT_TYPES.values()}
    assert len(classes) == len(ev.EVENT_TYPES)
    assert {c.handler_name for c in classes} >= {"on_engine_eval", "on_engine_checkpoint_saved", "on_engine_error"}
    replies = Playground.ReplyProgress
    assert replies(1, "ab", 2).can_replace(replies(1, "a", 1)) and not replies(2, "b", 1).can_replace(replies(1, "a", 1))


def test_playground_settings_map_to_sampling_settings():
    s = PlaygroundSettings()
    assert s.sampling("greedy").describe() == "greedy"
    t = s.with_strategy("temperature").with_temperature(+1).with_temperature(+1)
    assert t.sampling().temperature == pytest.approx(1.2) and t.sampling().top_k is None
    k = s.with_strategy("top-k").with_param(-1)
    assert k.top_k == 20 and k.sampling().top_k == 20 and k.sampling().top_p is None
    p = s.with_strategy("top-p").with_param(+1).with_param(+1).with_param(+1)
    assert p.top_p == 1.0 and p.sampling().top_p == 1.0
    for _ in range(50):
        t = t.with_temperature(-1)
    assert t.temperature == pytest.approx(0.1)
    assert s.with_strategy("top-k").with_param(+1, vocab_size=44).top_k == 44  # never above the vocabulary
    assert s.fit_vocab(30).top_k == 30
    for strategy in ("greedy", "temperature", "top-k", "top-p"):
        s.sampling(strategy).validate(65)


def test_min_p_knob_steps_inside_its_range():
    s = PlaygroundSettings().with_strategy("min-p")
    assert s.sampling().describe() == "min-p p=0.05 T=1" and s.sampling().top_k is None
    assert s.with_param(+1).min_p == pytest.approx(0.06) and s.with_param(-1).min_p == pytest.approx(0.04)
    low, high = s, s
    for _ in range(200):
        low, high = low.with_param(-1), high.with_param(+1)
    assert low.min_p == pytest.approx(0.01) and high.min_p == 1.0
    low.sampling().validate(65)
    high.sampling().validate(65)
    assert s.with_temperature(+1).sampling().describe() == "min-p p=0.05 T=1.1"


async def test_every_strategy_has_its_key_help_row_palette_title_and_hint():
    """A strategy added to the registry shows up everywhere the console lists strategies."""
    from rich.console import Console
    from textual.app import App

    from gptmini.sample.strategies import STRATEGIES, key_span
    from gptmini_tui.actions import ACTIONS, help_sections
    from gptmini_tui.screens.help import HelpScreen

    by_action = {a.action: a for a in ACTIONS}
    console = Console(width=200, record=True)
    console.print(HelpScreen(help_sections())._table())
    help_text = console.export_text()

    class JustThePlayground(App):
        def compose(self):
            yield Playground()

    app = JustThePlayground()
    async with app.run_test() as pilot:
        await pilot.pause()
        hint = str(app.query_one("#transcript-hint").render())
        for s in STRATEGIES.values():
            a = by_action[f"strategy({s.name!r})"]
            assert (a.keys, a.label, a.description, a.command) == (s.key, s.name, s.help, f"Strategy: {s.name}")
            assert any(line.split() == [s.key, *s.help.split()] for line in help_text.splitlines()), s.name
            assert s.name in hint.split(" pick ")[1].split(",")[0].split(" / "), s.name
        assert f"{key_span(list(STRATEGIES.values()))} pick" in hint
        # each one's own knob is the one the knob keys turn (greedy has none and says so)
        playground = app.query_one(Playground)
        for s in STRATEGIES.values():
            playground.set_strategy(s.name)
            before = playground.settings
            hint = playground.step_param(+1)
            if s.knob is None:
                assert hint == "greedy has no knob; 2 temperature, 3 top-k, 4 top-p, 5 min-p"
            else:
                assert hint is None and getattr(playground.settings, s.knob.name) != getattr(before, s.knob.name)


def test_formatting_helpers():
    assert fmt.human_count(1_234_567) == "1.23M" and fmt.human_count(999) == "999"
    assert fmt.human_bytes(1536) == "1.5 KB" and fmt.human_bytes(12) == "12 B" and fmt.epochs(1.5) == "1.50"
    assert fmt.duration(65) == "1m05s" and fmt.duration(None) == "–" and fmt.duration(3 * 3600 + 60) == "3h01m"
    assert fmt.lr(3e-4) == "3.0e-4" and fmt.loss(float("nan")) == "nan"
    assert fmt.perplexity(1.0) == "2.72" and fmt.perplexity(1000.0) == "inf"
    assert fmt.token_repr(" the\n") == "␣the\\n" and fmt.token_repr("") == "∅"


def test_progress_bars_fill_their_width_and_show_whole_percents():
    from gptmini_tui.widgets.counters import progress_bar

    for width in (24, 30, 38):
        for fraction in (0.0, 0.004, 0.33, 0.5, 0.999, 1.0, 1.7, -1):
            bar = progress_bar("epoch", fraction, width)
            assert bar.cell_len == width
    assert progress_bar("run", 0.5, 30).plain.endswith("  50%")
    assert progress_bar("run", 0.999, 30).plain.endswith("  99%")  # never 100 % before the end
    assert progress_bar("run", 2.0, 30).plain.endswith(" 100%")
    done = [span for span in progress_bar("run", 0.5, 30).spans if span.style == "rgb(64,196,255)"]
    assert sum(span.end - span.start for span in done) == 9  # half of the 18 bar cells


def test_each_action_says_when_it_can_run_and_why_not():
    from gptmini.events import RunState
    from gptmini_tui.actions import ATTACHED_REASON, BY_NAME, availability, why_unavailable

    save, pause, prompt_leave = BY_NAME["save"], BY_NAME["toggle_pause"], BY_NAME["leave_prompt"]
    own = dict(typing=False, attached=False)
    assert availability(save, **own, state=RunState.RUNNING, loop_active=True) is True
    assert availability(save, **own, state=RunState.STARTING, loop_active=False) is None  # dimmed, says why
    assert availability(pause, **own, state=RunState.STARTING, loop_active=False) is True  # pause once loaded
    assert availability(pause, **own, state=RunState.FINISHED, loop_active=False) is None
    assert availability(save, typing=False, attached=True, state=RunState.RUNNING, loop_active=False) is False
    assert availability(prompt_leave, **own, state=RunState.RUNNING, loop_active=True) is False  # only typing
    assert ATTACHED_REASON in why_unavailable(save, attached=True, state=RunState.RUNNING)
    assert "still loading" in why_unavailable(save, attached=False, state=RunState.STARTING)
    assert "n starts a new one" in why_unavailable(save, attached=False, state=RunState.FINISHED)


def test_the_keys_of_a_runs_task_and_only_those_are_offered():
    """A classifier has no sampling strategies; the formatted-prompt key belongs to an instruction run: hidden
    from the footer, the help and the palette elsewhere, and a key press says why."""
    from gptmini.events import RunState
    from gptmini_tui.actions import BY_NAME, availability, footer_entries, help_sections, why_unavailable

    now = dict(typing=False, attached=False, state=RunState.RUNNING, loop_active=True)
    compare, formatted, save = BY_NAME["compare"], BY_NAME["toggle_formatted"], BY_NAME["save"]
    assert [availability(compare, **now, task=t) for t in ("pretrain", "instruct", "classify")] == [True, True, False]
    assert [availability(formatted, **now, task=t) for t in ("pretrain", "instruct", "classify")] == [False, True,
                                                                                                      False]
    assert availability(save, **now, task="classify") is True
    assert why_unavailable(compare, attached=False, state=RunState.RUNNING, task="classify") == (
        "Compare: only in pre-training or instruction runs (this one is classification)")
    keys = {task: {k for _s, rows in help_sections(task) for k, _d in rows} for task in ("pretrain", "instruct",
                                                                                        "classify")}
    assert "f" in keys["instruct"] and "f" not in keys["pretrain"] and "c" not in keys["classify"]
    assert keys["pretrain"] == {k for _s, rows in help_sections() for k, _d in rows}  # as before the tasks
    labels = {e.label for e in footer_entries(lambda a: availability(a, **now, task="classify"))}
    assert "Compare" not in labels and "strategy" not in labels and "Save" in labels


def test_a_runs_task_mode_comes_from_its_run_started_event():
    from gptmini_tui.task_mode import TaskMode

    def started(task, info):
        return ev.RunStarted(run_name="r", run_dir="r", model_config={}, n_params=1, corpus="c", corpus_bytes=1,
                             train_tokens=1, val_tokens=1, tokenizer="char", vocab_size=9, device="cpu",
                             dtype="float32", batch_size=1, grad_accum=1, world_size=1, context_length=8, epochs=1,
                             batches_per_epoch=1, total_steps=1, start_step=0, task=task, task_info=info)

    instruct = TaskMode.of(started("instruct", {"template": "phi3", "mask_prompt": False}))
    assert instruct.instruct and instruct.describe() == "instruct · phi3 template"
    assert instruct.shown_prompt("Add 1 and 2.", "1+2") == "Add 1 and 2.\n1+2"
    classify = TaskMode.of(started("classify", {"labels": ["ham", "spam"], "pad_id": 3}))
    assert classify.classify and classify.labels == ("ham", "spam") and classify.describe() == "classify · ham / spam"
    assert classify.shown_prompt("win a prize", "ignored") == "win a prize"
    pretrain = TaskMode.of(started("pretrain", {}))
    assert pretrain == TaskMode() and pretrain.describe() == ""

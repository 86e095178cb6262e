"""The console as a training monitor: other runs on the plot, log scale, zoom, smoothing, the sample
timeline, and keeping the picture. Static runs (fixed time stamps) beside a live or attached one."""

from __future__ import annotations

import csv

import pytest
from tui_helpers import T0, current_step, press, wait_until, write_static_run

from gptmini.events import RunState
from gptmini_tui.app import GPTMiniApp
from gptmini_tui.widgets.runs import color_of

pytestmark = pytest.mark.timeout(120)

SIZE = (120, 40)


def runs_beside(tmp_path) -> tuple:
    """Three finished runs under tmp_path/runs (different lr and floors) and the folder a live run trains into."""
    root = tmp_path / "runs"
    for name, floor, lr in (("alpha", 1.4, 0.001), ("beta", 1.9, 0.0005), ("gamma", 2.3, 0.002)):
        write_static_run(root / name, floor=floor, finished=True, options={"lr": lr, "batch_size": 16})
    return root, root / "live"


def shown(app) -> list[str]:
    return [p.rsplit("/", 1)[-1] for p in app.main.plot.curves]


async def test_runs_are_listed_toggled_onto_the_plot_with_stable_colours_and_diffed(tiny_config, tmp_path):
    root, live = runs_beside(tmp_path)
    app = GPTMiniApp(tiny_config(out=str(live)))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await wait_until(pilot, lambda: current_step(app) >= 3, 60, "training")
        await wait_until(pilot, lambda: {"alpha", "beta", "gamma", "live"} <= {s.name for s in main.runs.summaries},
                         30, "the runs beside this one")
        by_name = {s.name: s for s in main.runs.summaries}
        assert by_name["alpha"].steps == 240 and not by_name["alpha"].live and by_name["alpha"].best_val is not None
        assert by_name["live"].live
        await press(pilot, "v", "v", until=lambda: main.tabs.active == "tab-runs", what="the Runs panel")
        await wait_until(pilot, lambda: main.runs.drawn, 30, "the runs table drawn")  # else its redraw moves the cursor
        table = main.runs.table

        def highlight(name: str) -> None:
            rows = [s.name for s in reversed(main.runs.summaries)]
            table.move_cursor(row=rows.index(name))

        highlight("beta")
        await wait_until(pilot, lambda: "beta vs this run" in str(main.runs.diff.render()), 30, "the diff line")
        assert "lr" in str(main.runs.diff.render())
        await press(pilot, "o", until=lambda: shown(app) == ["beta"], what="beta on the plot")
        highlight("alpha")
        await press(pilot, "o", until=lambda: shown(app) == ["beta", "alpha"], what="alpha on the plot")
        colours = {name: c.color for name, c in zip(shown(app), main.plot.curves.values())}
        await wait_until(pilot, lambda: {"alpha", "beta"} <= set(main.plot.last_views), 30, "both drawn")
        assert main.plot.last_views["alpha"].n_points == 240
        highlight("beta")
        await press(pilot, "o", until=lambda: shown(app) == ["alpha"], what="beta off the plot")
        await press(pilot, "o", until=lambda: shown(app) == ["beta", "alpha"], what="beta back on")  # colour order
        assert {n: c.color for n, c in zip(shown(app), main.plot.curves.values())} == colours  # colours kept
        assert colours["beta"] == color_of(0) and colours["alpha"] == color_of(1)
        assert "━ beta" in main.plot.border_subtitle and "━ alpha" in main.plot.border_subtitle  # the legend
        highlight("live")
        await press(pilot, "o", until=lambda: main.runs.selected().name == "live", what="nothing for this run")
        assert "live" not in shown(app)


async def test_log_scale_zoom_and_smoothing_change_the_plot(tiny_config, tmp_path):
    app = GPTMiniApp(tiny_config(eval_interval=50, max_steps=1500))
    async with app.run_test(size=SIZE) as pilot:
        plot = app.main.plot
        await wait_until(pilot, lambda: app.session.state == "finished", 60, "a finished run (a still history)")
        await press(pilot, "l", until=lambda: plot.options.log_y, what="log y")
        await wait_until(pilot, lambda: plot.up_to_date and "log y" in plot.border_title, 30, "a log-scale redraw")
        await press(pilot, "z", until=lambda: plot.options.zoom == 1000, what="zoom to the last 1,000 steps")
        await wait_until(pilot, lambda: plot.up_to_date and plot.last_view.n_points == 1000, 30, "the zoomed view")
        assert min(plot.last_view.raw_x) > 500 and max(plot.last_view.raw_x) <= 1500
        await press(pilot, "z", until=lambda: plot.options.zoom == 100, what="zoom to the last 100 steps")
        await wait_until(pilot, lambda: plot.up_to_date and plot.last_view.n_points == 100, 30, "the last 100")
        await press(pilot, "z", until=lambda: plot.options.zoom is None, what="the whole run again")
        await wait_until(pilot, lambda: plot.up_to_date and plot.last_view.n_points == 1500, 30, "the whole run")
        engine_smooth = plot.last_view.smooth_y[-1]
        await press(pilot, "greater_than_sign", until=lambda: plot.options.smooth == 10, what="smoothing 10")
        await wait_until(pilot, lambda: plot.up_to_date, 30, "the smoothed redraw")
        assert plot.last_view.smooth_y[-1] != engine_smooth and plot.last_view.raw_y  # raw stays visible
        await press(pilot, "l", until=lambda: not plot.options.log_y, what="linear y")
        await press(pilot, "a", "a", "a", until=lambda: plot.axis == "time", what="the wall-time axis")
        await wait_until(pilot, lambda: plot.up_to_date and plot.last_view.axis == "time", 30, "the time axis")
        assert 0.0 <= plot.last_view.raw_x[0] < plot.last_view.raw_x[-1] and plot.last_view.val_x  # val points stay


async def test_the_sample_timeline_fills_while_training_and_marks_what_a_restore_undid(tiny_config, tmp_path):
    from tests.tui.conftest import make_text

    corpus = tmp_path / "long.txt"
    corpus.write_text(make_text(300_000))
    app = GPTMiniApp(tiny_config(data=[str(corpus)], eval_interval=20, keep_last=100))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await wait_until(pilot, lambda: len(app.session.record.samples) >= 4, 60, "four samples")
        await wait_until(pilot, lambda: len(main.checkpoints.infos) >= 2, 60, "checkpoints (the best ones)")
        await wait_until(pilot, lambda: main.samples.count >= 4, 30, "the timeline")
        entries = app.session.record.samples
        first, newest = entries[0], entries[main.samples.count - 1]
        text = str(main.samples.body.render())
        # newest first ("step 20 ·", not the "step 20" of "step 200": under load more samples are in by now)
        assert text.index(f"step {newest.step:,} ·") < text.index(f"step {first.step:,} ·")
        assert "greedy" in text and "val " in text and "tokens" in text
        main.checkpoints.table.move_cursor(row=len(main.checkpoints.infos) - 1)  # the oldest checkpoint
        target = main.checkpoints.selected_info().step
        await press(pilot, "r", until=lambda: app.screen is not main, what="the restore question")
        before = len(entries)
        await press(pilot, "y", until=lambda: any(e.undone for e in entries), what="the restore")
        await wait_until(pilot, lambda: "undone by a restore" in str(main.samples.body.render()), 30,
                         "the undone entries marked")
        assert all(e.undone == (e.step > target) for e in entries[:before])  # marked, none lost


async def test_attach_rebuilds_the_timeline_and_compare_shows_runs_from_the_start(tmp_path):
    root, _ = runs_beside(tmp_path)
    write_static_run(tmp_path / "demo")
    app = GPTMiniApp(attach=tmp_path / "demo", clock=lambda: T0 + 100, compare=[root])
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await wait_until(pilot, lambda: len(app.session.record.samples) == 4, 30, "the samples from metrics.jsonl")
        await wait_until(pilot, lambda: main.samples.count == 4, 30, "the timeline")
        await wait_until(pilot, lambda: sorted(shown(app)) == ["alpha", "beta", "gamma"], 30, "--compare runs")


async def test_compared_runs_join_the_plot_once_this_run_has_started(tiny_config, tmp_path):
    """--compare beside a new run: this run's start comes first (loading millions of logged steps would hold
    it up), then the compared runs load: after the first step, or at once when the run waits paused."""
    root, live = runs_beside(tmp_path)
    for paused in (True, False):
        app = GPTMiniApp(tiny_config(out=str(live / str(paused))), start_paused=paused, compare=[root])
        async with app.run_test(size=SIZE) as pilot:
            main = app.main
            await wait_until(pilot, lambda: sorted(shown(app)) == ["alpha", "beta", "gamma"], 60, "--compare runs")
            assert app.session.state == RunState.PAUSED and current_step(app) == 0 if paused else current_step(app) >= 1


async def test_export_saves_the_plot_and_the_metrics(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = GPTMiniApp(tiny_config(eval_interval=20))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await wait_until(pilot, lambda: main.plot.last_view is not None and main.plot.last_view.n_points >= 40, 60,
                         "a drawn plot")
        await press(pilot, "e", until=lambda: any("gptmini-exports" in m for _t, _l, m in main.log_panel.entries),
                    what="the export")
    folder = tmp_path / "gptmini-exports"
    svg, = folder.glob("*.svg")
    table, = folder.glob("*.csv")
    assert svg.read_text().startswith("<svg") and "loss" in svg.read_text()
    rows = list(csv.DictReader(table.open()))
    assert rows[0]["step"] == "1" and float(rows[0]["loss"]) > 0 and any(r["val_loss"] for r in rows)


def test_snapshot_of_the_compare_view(snap_compare, tmp_path):
    root, _ = runs_beside(tmp_path)
    write_static_run(tmp_path / "demo")

    async def run_before(pilot):
        app = pilot.app
        main = app.main
        await wait_until(pilot, lambda: len(app.session.history) == 240 and app.session.state == "paused", 30,
                         "the attached run")
        await wait_until(pilot, lambda: sorted(shown(app)) == ["alpha", "beta", "gamma"], 30, "the compared runs")
        await wait_until(pilot, lambda: len(main.runs.summaries) == 4, 30, "the runs listed")
        main.tabs.show("tab-runs")
        await wait_until(pilot, lambda: main.tabs.active == "tab-runs", 30, "the Runs panel")
        await wait_until(pilot, lambda: main.runs.drawn, 30, "the runs table drawn")
        main.plot.maybe_redraw(force=True)
        await wait_until(pilot, lambda: main.plot.up_to_date and len(main.plot.last_views) == 3, 30, "the plot")
        await wait_until(pilot, lambda: main.probs.message.startswith("no checkpoint"), 30, "the probs panel")

    app = GPTMiniApp(attach=tmp_path / "demo", clock=lambda: T0 + 100, compare=[root])
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

"""The console's one screen: the layout, the action methods of ``actions.ACTIONS``, and what each
engine event changes on screen.

It owns no training, sampling or checkpoint logic: it asks its ``RunSession`` and its panes.
The UI thread refreshes counters and plot on one timer (counters once a second; the plot at most once
a second, spaced further apart when a plotext build is slow so re-plotting stays under 1 % of a core),
never per batch: on a 2-core CPU box every percent of a core the UI uses is taken from training
(bench/README_tui.md).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Input, Static, TabPane

from gptmini import events as ev
from gptmini.errors import GPTMiniError, error_text
from gptmini.events import RunState
from gptmini.runs import Comparison
from gptmini.session import RunSession
from gptmini_tui import actions
from gptmini_tui.actions import ATTACHED_REASON, Action, key
from gptmini_tui.bridge import EngineBridge
from gptmini_tui.messages import EngineMessage, Saved, engine
from gptmini_tui.screens.confirm import ConfirmScreen
from gptmini_tui.screens.help import HelpScreen
from gptmini_tui.screens.new_run import NewRunScreen
from gptmini_tui.task_mode import TaskMode
from gptmini_tui.widgets import (
    CheckpointsPanel,
    Counters,
    EventLog,
    KeyFooter,
    LossPlot,
    Panels,
    Playground,
    ProbsView,
    RunHeader,
    RunsPanel,
    SamplesPanel,
)
from gptmini_tui.widgets.loss_plot import Curve
from gptmini_tui.widgets.runs import color_of
from gptmini_tui.widgets.checkpoints import restore_question

LOUD_SAVE_REASONS = {"manual", "quit", "new-run", "stop", "final"}  # automatic saves only go to the log
ERROR_TITLES = {"nan": "loss is NaN", "oom": "out of memory", "data": "data error",
                "checkpoint": "checkpoint error", "config": "configuration error"}


class MainScreen(Screen):
    BINDINGS = actions.bindings()
    COMMANDS = {actions.ActionCommands}

    def __init__(self, session: RunSession, *, config: Any = None, attach: Path | None = None,
                 start_paused: bool = False, clock=time.time, ui_interval: float = 1.0,
                 plot_interval: float = 1.0, attach_interval: float = 1.0, compare: list[Path] | None = None) -> None:
        super().__init__()
        self.session = session
        self.config = config
        self.attach_dir = attach
        self.start_paused = start_paused
        self.clock = clock
        self.ui_interval = ui_interval
        self.attach_interval = attach_interval
        self.header = RunHeader(id="header")
        self.notice = Static("", id="notice")
        self.plot = LossPlot(session.history, interval=plot_interval, id="plot")
        self.counters = Counters(id="counters")
        self.tabs = Panels(id="tabs")
        self.playground = Playground(source=session.sampling_source, formatter=session.model_prompt, id="playground")
        self.checkpoints = CheckpointsPanel(lister=session.list_checkpoints, clock=clock, id="checkpoints")
        self.log_panel = EventLog(id="log")
        self.probs = ProbsView(source=session.sampling_source, id="probs")
        self.comparison = Comparison()
        self.runs = RunsPanel(list(compare or []), self.comparison, lambda: session.run_dir, clock=clock, id="runs")
        self.samples = SamplesPanel(id="samples")
        self.mode = TaskMode()  # what the run trains for (from its RunStarted)
        self._compiling = False  # torch.compile runs in the first step: the state line says so until it ends
        self._error_detail = ""
        self._bindings_signature: tuple | None = None

    @property
    def attached(self) -> bool:
        return self.attach_dir is not None

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.notice
        with Horizontal(id="top"):
            yield self.plot
            yield self.counters
        with Horizontal(id="bottom"):
            with self.tabs:
                with TabPane("Playground", id="tab-play"):
                    yield self.playground
                with TabPane("Checkpoints", id="tab-ckpt"):
                    yield self.checkpoints
                with TabPane("Runs", id="tab-runs"):
                    yield self.runs
                with TabPane("Samples", id="tab-samples"):
                    yield self.samples
                with TabPane("Log", id="tab-log"):
                    yield self.log_panel
            yield self.probs
        yield KeyFooter()

    def on_mount(self) -> None:
        self.tabs.focus_targets = {"tab-play": self.playground.transcript, "tab-ckpt": self.checkpoints.table,
                                   "tab-runs": self.runs.table, "tab-samples": self.samples, "tab-log": self.log_panel}
        self.counters.border_title = "training"
        self.probs.border_title = "next token"
        self.session.subscribe(EngineBridge(self.post_message, min_interval=self.ui_interval))
        self.set_interval(self.ui_interval, self._tick)
        self.playground.transcript.focus()
        if self.attached:
            self._start_attach()
            self.runs.index.add_root(self.attach_dir.parent)
            self.runs.show_compared()
        else:
            self.begin_run(self.config, paused=self.start_paused)

    # ================================================================= runs
    def begin_run(self, config: Any, paused: bool = False) -> None:
        """Start training ``config`` in the session, with every pane reset for it.

        The panes are reset after the start, in the same handler: the new run's events are messages,
        handled after this returns.
        """
        self.session.start(config, paused=paused)  # GPTMiniError while an old run is still going
        self.config = self.session.config
        self.counters.reset()
        self.set_state(RunState.STARTING, f"press {key('toggle_pause')} to start once loaded" if paused
                       else "loading data and model…")
        self.header.set_loading("loading corpus, tokenizer and model…")
        self.checkpoints.clear()
        self.checkpoints.set_controls_enabled(True)
        self.probs.show_message("waiting for the model…")

    def _start_attach(self) -> None:
        self.header.set_mode("ATTACHED")
        self.header.set_loading(f"following {self.attach_dir}")
        self.notice.update(f"⇄ {ATTACHED_REASON} ({self.attach_dir.name!r}) · replies use its newest checkpoint")
        self.notice.display = True
        self.session.attach(self.attach_dir, every=self.attach_interval)  # its thread posts what it reads
        self.set_state("attached")
        self.checkpoints.set_controls_enabled(False, ATTACHED_REASON)
        self.playground.weights_note = "newest checkpoint"
        self.playground.show_status()
        self.set_interval(2.0, self.checkpoints.refresh_listing)

    def set_state(self, state: str, detail: str = "") -> None:
        self.counters.set_state(state, detail)  # the footer follows (the task too: a state follows RunStarted)
        signature = actions.refresh_signature(self.available)
        if signature != self._bindings_signature:
            self._bindings_signature = signature
            self.refresh_bindings()

    def _tick(self) -> None:
        """Once a second: counters, plot and samples (one timer: fewer wake-ups of the UI thread)."""
        self._update_counters()
        self.plot.maybe_redraw()
        record = self.session.record
        self.samples.show(record.samples, record.samples_version)
        latest = self.session.record.latest_step
        self.probs.follow(latest.step if latest else None, self.session.snapshot_step, snapshot=not self.attached)
        if self.attached:
            self.counters.note_idle(self.session.state, latest.time if latest else None, self.clock())

    def _update_counters(self, force: bool = False) -> None:
        self.counters.show_step(self.session.record.latest_step, self.session.steps_since_save, force)

    # ======================================================== engine events
    @on(EngineMessage)
    def _log(self, message: EngineMessage) -> None:
        """Every engine event has its line in the log (besides what its own handler below changes)."""
        self.log_panel.add_event(message.event)

    @on(engine(ev.Step))
    def _step(self) -> None:
        if self.counters.newest is None:
            self._update_counters()  # the first step shows at once; later ones on the tick
        self.runs.show_compared()  # not under the check above: the tick may have shown the first step already
        if self._compiling:
            self._compiling = False
            if self.counters.state_label.state == RunState.RUNNING:
                self.set_state(RunState.RUNNING)

    @on(engine(ev.RunStarted))
    def _run_started(self, message) -> None:
        e: ev.RunStarted = message.event
        self.header.set_run(e)
        self._compiling = e.compiled and not self.attached
        self.counters.set_epochs(e.epochs)
        self.counters.started_at = e.time
        self.mode = mode = TaskMode.of(e)
        for pane in (self.playground, self.samples):
            pane.set_mode(mode)
        self.probs.set_mode(mode, needs_prompt=e.tokenizer == "char")
        self.playground.fit_vocab(e.vocab_size)
        self.playground.suggest_prompt(e.sample_prompt or "")
        self.plot.maybe_redraw(force=True)
        self.checkpoints.refresh_listing()
        self.runs.index.add_root(Path(e.run_dir).parent)
        self.runs.refresh_runs()
        self.probs.schedule(self.playground.model_prompt(), self.playground.settings, delay=0.2)

    @on(engine(ev.DataProgress))
    def _data_progress(self, message) -> None:
        e: ev.DataProgress = message.event
        if e.done_bytes < e.total_bytes:
            self.set_state(RunState.STARTING, f"tokenising {e.label}: {100 * e.done_bytes // e.total_bytes}%")

    @on(engine(ev.StateChanged))
    def _state_changed(self, message) -> None:
        e: ev.StateChanged = message.event
        detail = ""
        if e.state == RunState.ERROR and not self.attached:
            detail = self._error_detail
        elif e.state == RunState.PAUSED and not self.attached:
            detail = f"press {key('toggle_pause')} to {'resume' if e.step else 'start'}"
        elif e.state == RunState.RUNNING and self._compiling:
            detail = "compiling the model (torch.compile): the first step takes a while"
        self.set_state(e.state, detail)
        if e.state.ended and not self.attached:
            self.checkpoints.set_controls_enabled(False, actions.RUN_ENDED)
        if e.state not in (RunState.RUNNING, RunState.STARTING):
            self.runs.show_compared()
            self._update_counters(force=True)

    @on(engine(ev.Eval))
    def _eval(self, message) -> None:
        e: ev.Eval = message.event
        self.counters.show_eval(e.val_loss, e.best, e.metrics)
        self.session.refresh_sampling()
        self.probs.schedule(delay=0.5)

    @on(engine(ev.Sample))
    def _sample(self, message) -> None:
        self.playground.suggest_prompt(message.event.prompt)

    @on(engine(ev.CheckpointSaved))
    def _checkpoint_saved(self, message) -> None:
        e: ev.CheckpointSaved = message.event
        if not self.attached and set(e.reason.split("+")) & LOUD_SAVE_REASONS:
            self.notify(f"checkpoint saved: step {e.step:,} ({e.reason})", title="saved", timeout=3)
        self.checkpoints.refresh_listing()
        self._update_counters(force=True)  # the "unsaved" count changed even if no step did

    @on(engine(ev.CheckpointRestored))
    def _checkpoint_restored(self, message) -> None:
        e: ev.CheckpointRestored = message.event
        self.counters.show_restored(e.step, e.epoch, e.tokens_seen)
        self.plot.maybe_redraw(force=True)
        if not self.attached:
            self.notify(f"restored step {e.step:,}; training continues from there", title="restored", timeout=4)
        self.checkpoints.refresh_listing()

    @on(engine(ev.Warning))
    def _warning(self, message) -> None:
        if not self.attached:
            self.notify(message.event.message, severity="warning", timeout=6)

    @on(engine(ev.Error))
    def _error(self, message) -> None:
        e: ev.Error = message.event
        title = ERROR_TITLES.get(e.error_kind, "error")
        self.notify(e.message, title=title, severity="error", timeout=12)
        if e.fatal and not self.attached:
            self._error_detail = f"{title} — see the log; {key('new_run')} starts a new run"
            self.set_state(RunState.ERROR, self._error_detail)

    @on(engine(ev.Finished))
    def _finished(self, message) -> None:
        e: ev.Finished = message.event
        self._update_counters(force=True)
        self.counters.show_final(e.metrics)
        if not self.attached and e.reason == "completed":
            self.notify(f"training finished at step {e.step:,}; the playground keeps working, {key('new_run')} "
                        "starts a new run", title="finished", timeout=6)

    # =========================================================== pane facts
    @on(Playground.Changed)
    def _playground_changed(self, message: Playground.Changed) -> None:
        self.probs.schedule(message.prompt, message.settings)

    @on(RunsPanel.CurvesChanged)
    def _curves_changed(self) -> None:
        shown = sorted(self.comparison.shown.items(), key=lambda item: self.comparison.color(item[0]))
        self.plot.set_curves({str(path): Curve(path.name, curve.history, color_of(self.comparison.color(path)),
                                               curve.finished) for path, curve in shown})

    @on(CheckpointsPanel.Listed)
    def _listed(self, message: CheckpointsPanel.Listed) -> None:
        if message.error:
            self.log_panel.add(message.error, "warning")
            return
        newer = self.session.newer_checkpoint(message.infos) if self.attached else None
        if newer is not None:
            self.playground.show_status(f"newer checkpoint {newer.name}: next reply uses it")
            self.probs.schedule(delay=0.5)  # the view follows the newest checkpoint

    # ============================================================== gating
    @property
    def typing(self) -> bool:
        return isinstance(self.focused, Input) and self.focused in self.playground.inputs

    def available(self, action: Action) -> bool | None:
        return actions.availability(action, typing=self.typing, attached=self.attached, state=self.session.state,
                                    loop_active=self.session.is_active, task=self.mode.name)

    def on_key(self, event: events.Key) -> None:
        """A key whose action cannot run now says why, instead of doing nothing."""
        action = None if self.typing else actions.unavailable_key(event.key, lambda name: self.check_action(name, ()))
        if action is not None:
            self.notify(actions.why_unavailable(action, attached=self.attached, state=self.session.state,
                                                task=self.mode.name), severity="warning", timeout=3)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        spec = actions.BY_NAME.get(action)
        if spec is None:
            return True
        if spec.typed and self.typing:
            return False
        return self.available(spec)

    # ==================================================== actions: training
    def action_toggle_pause(self) -> None:
        session = self.session
        pause = not session.pause_requested
        if pause:
            session.pause()
        else:
            session.resume()
        if session.state in (RunState.CREATED, RunState.STARTING):
            self.counters.set_state(RunState.STARTING,
                                    "will wait paused once loaded" if pause else "loading data and model…")
        else:  # until the engine confirms with StateChanged, between two steps
            self.counters.set_state("pausing" if pause else "resuming", "after this step" if pause else "")

    def action_save(self) -> None:
        try:
            self.session.save("manual")
        except Exception as exc:
            self.notify(error_text(exc), severity="warning")
            return
        self.notify("saving a checkpoint…", timeout=2)

    def action_restore(self) -> None:
        info, problem = self.checkpoints.restorable()
        self.tabs.show("tab-ckpt")
        if problem:
            self.notify(problem, severity="warning")
            return
        latest, trainer = self.session.record.latest_step, self.session.trainer
        question = restore_question(info, self.session.steps_since_save, latest.step if latest else None)

        def answered(choice: str | None) -> None:
            if choice == "yes" and self.session.trainer is trainer:
                self.log_panel.add(f"restoring {info.name}…", "save")
                try:
                    self.session.restore(info.path)
                except Exception as exc:
                    self.notify(error_text(exc), severity="warning")

        self.app.push_screen(ConfirmScreen("Restore checkpoint?", question), answered)

    @work(group="new-run", exclusive=True, exit_on_error=False)
    async def action_new_run(self) -> None:
        """The form; then, if this run has unsaved steps, save or discard them; stop it; start the new one."""
        note = "The current run keeps going until you start the new one."
        config = await self.app.push_screen_wait(NewRunScreen(self.config, note=note))
        if config is None:
            return
        unsaved = self.session.steps_since_save if self.session.is_active else 0
        choice = "discard"
        if unsaved > 0:
            body = (f"The current run has {unsaved} step(s) since its last checkpoint.\n"
                    "Save them before starting the new run?")
            choices = [("cancel", "Cancel", "escape"), ("discard", "Discard", "d"), ("save", "Save first", "s")]
            choice = await self.app.push_screen_wait(ConfirmScreen("Start a new run?", body, choices))
            if choice not in ("discard", "save"):
                return
        self.log_panel.add("stopping the current run for a new one…", "info")
        self.playground.cancel()
        problem = await asyncio.to_thread(self.session.stop, save_reason="new-run" if choice == "save" else None)
        if problem:
            self.log_panel.add(f"the old run: {problem}", "warning")
        try:
            self.begin_run(config)
        except GPTMiniError as exc:  # the old run did not stop (a step of many minutes): say so, keep it
            self.notify(f"cannot start the new run: {exc}", severity="error", timeout=10)
            return
        self.log_panel.add("started a new run", "info")

    # ================================================== actions: playground
    def action_strategy(self, strategy: str) -> None:
        self.playground.set_strategy(strategy)

    def action_temperature(self, direction: int) -> None:
        hint = self.playground.step_temperature(int(direction))
        if hint:
            self.notify(hint, timeout=2)

    def action_param(self, direction: int) -> None:
        hint = self.playground.step_param(int(direction))
        if hint:
            self.notify(hint, timeout=2)

    def action_compare(self) -> None:
        self.tabs.show("tab-play")
        self.playground.compare()

    def action_toggle_formatted(self) -> None:
        self.tabs.show("tab-play")
        self.playground.toggle_formatted()

    def action_stop_generation(self) -> None:
        if self.playground.cancel():
            self.notify("generation stopped", timeout=1.5)

    def action_stop_or_hint(self) -> None:
        if self.playground.generating:
            self.action_stop_generation()
        else:
            self.notify(f"press {key('quit')} (or {actions.QUIT_ANYWHERE}) to quit", title="quit?", timeout=3)

    def action_refresh_probs(self) -> None:
        self.session.refresh_sampling()
        self.probs.schedule(delay=0.0)

    def action_focus_prompt(self) -> None:
        self.tabs.show("tab-play", self.playground.prompt_input)

    def action_submit_prompt(self) -> None:
        self.action_focus_prompt()

    def action_leave_prompt(self) -> None:
        self.playground.transcript.focus()

    # ======================================================== actions: view
    def action_cycle_axis(self) -> None:
        self.notify(f"loss plot x-axis: {self.plot.cycle_axis()}", timeout=1.5)

    def action_next_panel(self) -> None:
        self.tabs.next()

    def action_toggle_log_y(self) -> None:
        self.notify(f"loss plot y-axis: {'log' if self.plot.toggle_log_y() else 'linear'}", timeout=1.5)

    def action_zoom(self) -> None:
        zoom = self.plot.cycle_zoom()
        self.notify(f"loss plot: {f'the last {zoom:,} steps' if zoom else 'the whole run'}", timeout=1.5)

    def action_smoothing(self, direction: int) -> None:
        window = self.plot.step_smoothing(int(direction))
        self.notify("smoothed: " + (f"mean of the last {window} steps" if window else "the engine's running average"),
                    timeout=1.5)

    def action_toggle_run(self) -> None:
        self.tabs.show("tab-runs")
        self.notify(self.runs.toggle_selected(), timeout=2)

    def action_save_plot(self) -> None:
        self.plot.export(Path.cwd() / "gptmini-exports", self.session.run_dir.name if self.session.run_dir else "run")

    @on(Saved)
    def _saved(self, message: Saved) -> None:
        self.log_panel.add(message.text, "save" if message.ok else "error")
        self.notify(message.text, title="exported" if message.ok else "export failed",
                    severity="information" if message.ok else "error", timeout=6)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(actions.help_sections(self.mode.name), note=actions.help_note(self.attached)))

    async def action_quit(self) -> None:
        await self.app.action_quit()

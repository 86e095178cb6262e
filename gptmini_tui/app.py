"""GPTMiniApp: the training console.

Threads and who may touch what:

* the training thread runs ``Trainer.run()``; its only link to the UI is
  ``EngineBridge`` (appends to ``LossHistory``, ``post_message``);
* thread workers do everything slow: sampling, next-token distributions,
  model snapshots, checkpoint listings, attach-mode polling, the quit wait;
  they talk back with ``post_message`` only;
* the UI thread owns every widget and refreshes counters and plot on timers
  (counters once a second; the plot at most once a second, spaced further apart
  when a plotext build is slow so re-plotting stays under 1 % of a core) --
  never per batch. On a 2-core CPU box every percent of a core the UI uses is
  taken from training (bench/README_tui.md), hence the modest rates.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Static, TabbedContent, TabPane, Tabs
from textual.worker import get_current_worker

from gptmini import events as ev
from gptmini.errors import GPTMiniError
from gptmini_tui import fmt
from gptmini_tui.bridge import EngineBridge
from gptmini_tui.history import LossHistory
from gptmini_tui.messages import (
    AttachModelChanged,
    CheckpointsListed,
    DistributionReady,
    EngineEvent,
    GenerationIdle,
    HistoryReset,
    ReplyFinished,
    ReplyProgress,
    ReplyStarted,
    StepProgress,
    StopSignal,
    TrainerExited,
)
from gptmini_tui.screens import ConfirmScreen, HelpScreen, NewRunScreen
from gptmini_tui.settings import STRATEGIES, PlaygroundSettings
from gptmini_tui.widgets import CheckpointsPanel, Counters, EventLog, LossPlot, Playground, ProbsView, RunHeader

ATTACHED_REASON = "attached: controls belong to the training process"
TRAINING_ACTIONS = ("pause", "resume", "toggle_pause", "save", "restore", "new_run")
# Actions on printable keys: hidden (and inert) while the prompt has focus, so typing never triggers them.
TYPING_BLOCKED = (
    "help", "pause", "resume", "toggle_pause", "save", "restore", "new_run", "focus_prompt", "compare",
    "stop_generation",
    "strategy", "temperature", "param", "cycle_axis", "next_panel", "refresh_probs", "quit",
)
PANELS = ("tab-play", "tab-ckpt", "tab-log")
PROBS_MAX_WAIT = 1.0  # seconds a debounced next-token request may be pushed back
LOUD_SAVE_REASONS = {"manual", "quit", "new-run", "stop", "final"}  # automatic saves only go to the log


# Trainers whose daemon thread may still run; stopped at interpreter exit so a
# crash or an interrupted test never kills torch mid-step ("terminate called ...").
_LIVE_TRAINERS: dict[int, tuple[Any, threading.Event]] = {}


@atexit.register
def _stop_live_trainers() -> None:
    for trainer, done in list(_LIVE_TRAINERS.values()):
        try:
            trainer.stop(save=False)
        except Exception:
            pass
    for _trainer, done in list(_LIVE_TRAINERS.values()):
        done.wait(10.0)


class _Sampling:
    """What the playground samples from: (model, tokenizer, step, label)."""

    __slots__ = ("model", "tokenizer", "step", "label", "taken")

    def __init__(self, model, tokenizer, step: int | None, label: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.step = step
        self.label = label
        self.taken = time.monotonic()


class GPTMiniApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "GPTMini"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    ENABLE_COMMAND_PALETTE = True

    _strategy = Binding.Group("strategy", compact=True)
    _temp = Binding.Group("T", compact=True)
    _param = Binding.Group("k/p", compact=True)

    BINDINGS = [
        # footer order: the most used first (the footer clips what does not fit; ? lists everything)
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("space", "toggle_pause", "Pause", key_display="space"),
        Binding("s", "save", "Save"),
        Binding("r", "restore", "Restore"),
        Binding("n", "new_run", "New"),
        Binding("c", "compare", "Compare"),
        Binding("x", "stop_generation", "Stop"),
        Binding("1", "strategy('greedy')", "greedy", group=_strategy),
        Binding("2", "strategy('temperature')", "temperature", group=_strategy),
        Binding("3", "strategy('top-k')", "top-k", group=_strategy),
        Binding("4", "strategy('top-p')", "top-p", group=_strategy),
        Binding("left_square_bracket", "temperature(-1)", "temperature down", key_display="[", group=_temp),
        Binding("right_square_bracket", "temperature(1)", "temperature up", key_display="]", group=_temp),
        Binding("minus", "param(-1)", "knob down (k, p or T)", key_display="-", group=_param),
        Binding("plus,equals_sign", "param(1)", "knob up (k, p or T)", key_display="+", group=_param),
        Binding("q", "quit", "Quit"),
        Binding("a", "cycle_axis", "Axis"),
        Binding("v", "next_panel", "Panel"),
        Binding("i,slash", "focus_prompt", "Prompt", key_display="i"),
        Binding("d", "refresh_probs", "Probs"),
        Binding("enter", "submit_prompt", "Generate"),
        Binding("escape", "leave_prompt", "Leave prompt"),
        Binding("ctrl+c", "stop_or_hint", "Stop generation", show=False),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        train_config: Any = None,
        *,
        attach: str | Path | None = None,
        start_paused: bool = False,
        clock=time.time,
        ui_interval: float = 1.0,
        plot_interval: float = 1.0,
        attach_interval: float = 1.0,
        quit_save_timeout: float = 30.0,
        stop_timeout: float = 15.0,
        trainer_factory=None,
    ) -> None:
        super().__init__()
        self.train_config = train_config
        self.attach_dir = Path(attach) if attach is not None else None
        self.start_paused = start_paused
        self.clock = clock
        self.ui_interval = ui_interval
        self.plot_interval = plot_interval
        self.attach_interval = attach_interval
        self.quit_save_timeout = quit_save_timeout
        self.stop_timeout = stop_timeout
        self._trainer_factory = trainer_factory
        self.history = LossHistory()
        self.bridge: EngineBridge | None = None
        self.trainer = None
        self._trainer_done: threading.Event | None = None
        self.run_dir: Path | None = self.attach_dir
        self.run_started: ev.RunStarted | None = None
        self.state = "attached" if self.attach_dir else "starting"
        self.settings = PlaygroundSettings()
        self.vocab_size: int | None = None
        self._shown_step_id = None
        self._last_counter_update = 0.0
        # playground
        self._reply_seq = 0
        self._generation = 0
        self._gen_cancel: threading.Event | None = None
        self.generating = False
        self._probs_request = 0
        self._probs_timer = None
        self._train_thread: threading.Thread | None = None
        self._probs_due_by = 0.0
        self._sampling_lock = threading.Lock()
        self._sampling: _Sampling | None = None
        # attach mode
        self._follower = None
        self._polling = False
        self._last_listing = 0.0
        self._attach_infos: list = []
        self._attach_model_key: tuple | None = None
        self._last_event_time: float | None = None
        # quitting
        self._quitting = False
        self.quit_report: str | None = None
        self._error_detail = ""
        self.pause_requested = start_paused  # what the user asked for; the engine confirms with StateChanged
        self._bindings_signature: tuple | None = None
        self._main_screen: Screen | None = None
        self._widgets: dict[str, Any] = {}

    # ================================================================ layout
    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        yield Static("", id="notice")
        with Horizontal(id="top"):
            yield LossPlot(self.history, interval=self.plot_interval, own_timer=False, id="plot")
            yield Counters(id="counters")
        with Horizontal(id="bottom"):
            with TabbedContent(id="tabs", initial="tab-play"):
                with TabPane("Playground", id="tab-play"):
                    yield Playground(id="playground")
                with TabPane("Checkpoints", id="tab-ckpt"):
                    yield CheckpointsPanel(clock=self.clock, id="checkpoints")
                with TabPane("Log", id="tab-log"):
                    yield EventLog(id="log")
            yield ProbsView(id="probs")
        yield Footer(compact=True)

    # shortcuts (always query the main screen: a modal may be on top)
    @property
    def _main(self) -> Screen:
        return self._main_screen if self._main_screen is not None else self.screen_stack[0]

    def _widget(self, selector: str, cls):
        w = self._widgets.get(selector)
        if w is None:
            w = self._widgets[selector] = self._main.query_one(selector, cls)
        return w

    @property
    def ui_alive(self) -> bool:
        """False once the app is shutting down (late messages from threads are then ignored)."""
        main = self._main_screen
        return main is not None and main.is_attached and not self._closing

    @property
    def tabs(self) -> TabbedContent:
        return self._widget("#tabs", TabbedContent)

    @property
    def counters(self) -> Counters:
        return self._widget("#counters", Counters)

    @property
    def plot(self) -> LossPlot:
        return self._widget("#plot", LossPlot)

    @property
    def playground(self) -> Playground:
        return self._widget("#playground", Playground)

    @property
    def probs(self) -> ProbsView:
        return self._widget("#probs", ProbsView)

    @property
    def log_panel(self) -> EventLog:
        return self._widget("#log", EventLog)

    @property
    def checkpoints(self) -> CheckpointsPanel:
        return self._widget("#checkpoints", CheckpointsPanel)

    @property
    def header(self) -> RunHeader:
        return self._widget("#header", RunHeader)

    @property
    def attached(self) -> bool:
        return self.attach_dir is not None

    def get_driver_class(self):
        driver = super().get_driver_class()
        if driver.__name__ == "LinuxDriver":  # not a driver chosen by TEXTUAL_DRIVER, nor Windows
            from gptmini_tui.driver import ConsoleDriver

            return ConsoleDriver
        return driver

    def on_mount(self) -> None:
        self._main_screen = self.screen
        self.counters.border_title = "training"
        self.probs.border_title = "next token"
        self._show_settings()
        self.set_interval(self.ui_interval, self._ui_tick)
        self.playground.transcript.focus()
        if self.attached:
            self._start_attach()
        else:
            self._start_trainer(self.train_config)

    # ============================================================ training
    def _start_trainer(self, config) -> None:
        from gptmini.engine import Trainer

        if config is None:
            from gptmini.train_config import TrainConfig

            config = TrainConfig()
        self.train_config = config
        self.history.clear()
        bridge = EngineBridge(self.post_message, self.history, min_interval=self.ui_interval)
        self.bridge = bridge
        factory = self._trainer_factory or Trainer
        self.trainer = factory(config, start_paused=self.start_paused)
        self.pause_requested = self.start_paused
        self.trainer.subscribe(bridge)
        self.run_started = None
        self.run_dir = None
        self.vocab_size = None
        with self._sampling_lock:
            self._sampling = None
        self._shown_step_id = None
        self.counters.reset()
        detail = "press space to start once loaded" if self.start_paused else "loading data and model…"
        self._set_state("starting", detail)
        self.header.set_loading("loading corpus, tokenizer and model…")
        self.checkpoints.set_infos([])
        self.checkpoints.set_controls_enabled(True)
        self.probs.show_message("waiting for the model…")
        self._trainer_done = threading.Event()
        self._run_trainer(self.trainer, self._trainer_done)

    @work(thread=True, group="trainer", exit_on_error=False, name="trainer")
    def _run_trainer(self, trainer, done: threading.Event) -> None:
        """Run the trainer on a daemon thread and wait for it here.

        The indirection keeps quitting prompt: Textual joins its worker
        threads at exit, and this one returns as soon as it is cancelled even
        if ``run()`` is still finishing a step; the daemon thread never holds
        the process open.
        """
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = trainer.run()
            except BaseException as exc:  # run() reports its own errors; this is a last resort
                box["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                _LIVE_TRAINERS.pop(id(trainer), None)
                done.set()

        thread = threading.Thread(target=target, name="gptmini-train", daemon=True)
        _LIVE_TRAINERS[id(trainer)] = (trainer, done)
        self._train_thread = thread
        thread.start()
        worker = get_current_worker()
        while not done.wait(0.5):
            if worker.is_cancelled:
                return
        self.post_message(TrainerExited(box.get("error")))

    def _set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        self.counters.set_state(state, detail)
        self._refresh_bindings_if_changed()

    def _refresh_bindings_if_changed(self) -> None:
        """Footer recomposes on every refresh_bindings(): only ask when an action's availability changed."""
        signature = tuple(self.check_action(a, ()) for a in ("toggle_pause", "save", "restore", "new_run"))
        if signature != self._bindings_signature:
            self._bindings_signature = signature
            self.refresh_bindings()

    # =========================================================== attach mode
    def _start_attach(self) -> None:
        from gptmini.metrics import MetricsFollower

        self.header.set_mode("ATTACHED")
        self.header.set_loading(f"following {self.attach_dir}")
        notice = self._main.query_one("#notice", Static)
        notice.update(
            f"⇄ {ATTACHED_REASON} ({self.attach_dir.name!r}) · replies use its newest checkpoint"
        )
        notice.display = True
        self.bridge = EngineBridge(self.post_message, self.history, min_interval=self.ui_interval)
        self._follower = MetricsFollower(self.attach_dir)
        self._set_state("attached")
        self.checkpoints.set_controls_enabled(False, ATTACHED_REASON)
        self.playground.set_status(self._status_text())
        self._attach_poll()
        self.set_interval(self.attach_interval, self._attach_poll)

    @work(thread=True, group="attach-poll", exit_on_error=False)
    def _attach_poll(self) -> None:
        if self._polling or self._quitting:
            return
        self._polling = True
        try:
            from gptmini.checkpoint import list_checkpoints

            events = self._follower.poll()
            ckpt_event = False
            for event in events:
                self.bridge(event)
                if isinstance(event, (ev.CheckpointSaved, ev.CheckpointRestored, ev.RunStarted)):
                    ckpt_event = True
            now = time.monotonic()
            if ckpt_event or now - self._last_listing >= 2.0:
                self._last_listing = now
                try:
                    infos = list_checkpoints(self.attach_dir)
                    self.post_message(CheckpointsListed(str(self.attach_dir), infos))
                except Exception as exc:
                    self.post_message(CheckpointsListed(str(self.attach_dir), [], error=str(exc)))
        finally:
            self._polling = False

    # ============================================================= messages
    def on_step_progress(self, message: StepProgress) -> None:
        if not self.ui_alive:
            return
        now = time.monotonic()
        if now - self._last_counter_update >= self.ui_interval:
            self._update_counters()

    def _ui_tick(self) -> None:
        if not self.ui_alive:
            return
        self._update_counters()
        self.plot.maybe_redraw()  # one timer for counters and plot: fewer wakeups of the UI thread
        if self.attached and self._last_event_time is not None and self.state in ("running", "starting"):
            idle = self.clock() - self._last_event_time
            if idle > 30:
                self.counters.set_state(self.state, f"no update for {fmt.duration(idle)}")

    def _update_counters(self) -> None:
        bridge = self.bridge
        if bridge is None:
            return
        step = bridge.latest_step
        if step is None or id(step) == self._shown_step_id:
            return
        self._shown_step_id = id(step)
        self._last_counter_update = time.monotonic()
        counters = self.counters
        t = self.trainer
        if t is not None and not self.attached:
            counters.unsaved = t.steps_since_save
        else:
            saved = bridge.last_saved
            counters.unsaved = step.step - (saved.step if saved is not None else 0)
        counters.show_step(step)
        if self.attached:
            self._last_event_time = step.time

    def on_history_reset(self, message: HistoryReset) -> None:
        if not self.ui_alive:
            return
        self.plot.maybe_redraw(force=True)

    def on_engine_event(self, message: EngineEvent) -> None:
        if not self.ui_alive:
            return
        e = message.event
        if self.attached:
            self._last_event_time = getattr(e, "time", None)
        if isinstance(e, ev.RunStarted):
            self._on_run_started(e)
        elif isinstance(e, ev.DataProgress):
            if e.done_bytes < e.total_bytes:
                self._set_state("starting", f"tokenising {e.label}: {100 * e.done_bytes // e.total_bytes}%")
            else:
                self.log_panel.add_event(e)
        elif isinstance(e, ev.StateChanged):
            if self.attached:
                self._set_state(e.state)
            else:
                if e.state in ("paused", "running"):
                    self.pause_requested = e.state == "paused"
                detail = ""
                if e.state == "error":
                    detail = self._error_detail
                elif e.state == "paused":
                    detail = "press space to resume" if e.step else "press space to start"
                self._set_state(e.state, detail)
                if e.state in ("finished", "error"):
                    self.checkpoints.set_controls_enabled(False, "the run has ended · n starts a new one")
            if e.state in ("paused", "stopping", "finished", "error"):
                self._update_counters()
            if e.state not in ("running", "paused"):
                self.log_panel.add_event(e)
        elif isinstance(e, ev.Eval):
            self.counters.show_eval(e.val_loss, e.best)
            self.log_panel.add_event(e)
            self._schedule_probs(delay=0.5, fresh=True)
        elif isinstance(e, ev.Sample):
            self.log_panel.add_event(e)
            prompt = self.playground.prompt_input
            if not prompt.value and not prompt.has_focus:
                prompt.value = e.prompt  # a prompt the tokenizer is known to accept
        elif isinstance(e, ev.CheckpointSaved):
            self.log_panel.add_event(e)
            if not self.attached and set(e.reason.split("+")) & LOUD_SAVE_REASONS:
                self.notify(f"checkpoint saved: step {e.step:,} ({e.reason})", title="saved", timeout=3)
            self._refresh_checkpoints()
            self._shown_step_id = None  # the "unsaved" count changed even if no step did
            self._update_counters()
        elif isinstance(e, ev.CheckpointRestored):
            self.log_panel.add_event(e)
            self.counters.show_restored(e.step, e.epoch, e.tokens_seen)
            self.plot.maybe_redraw(force=True)
            with self._sampling_lock:
                self._sampling = None
            if not self.attached:
                self.notify(f"restored step {e.step:,}; training continues from there", title="restored", timeout=4)
            self._refresh_checkpoints()
        elif isinstance(e, ev.Warning):
            self.log_panel.add_event(e)
            if not self.attached:
                self.notify(e.message, severity="warning", timeout=6)
        elif isinstance(e, ev.Error):
            self.log_panel.add_event(e)
            title = {"nan": "loss is NaN", "oom": "out of memory", "data": "data error",
                     "checkpoint": "checkpoint error", "config": "configuration error"}.get(e.error_kind, "error")
            self.notify(e.message, title=title, severity="error", timeout=12)
            if e.fatal and not self.attached:
                self._error_detail = f"{title} — see the log; n starts a new run"
                self.counters.set_state("error", self._error_detail)
        elif isinstance(e, ev.Finished):
            self.log_panel.add_event(e)
            self._update_counters()
            if not self.attached and e.reason == "completed":
                self.notify(
                    f"training finished at step {e.step:,}; the playground keeps working, n starts a new run",
                    title="finished", timeout=6,
                )

    def _on_run_started(self, e: ev.RunStarted) -> None:
        self.run_started = e
        self.run_dir = Path(e.run_dir) if not self.attached else self.attach_dir
        self.vocab_size = e.vocab_size
        self.settings = self.settings.fit_vocab(e.vocab_size)
        self.header.set_run(e)
        self.checkpoints.tokens_per_epoch = (
            e.batches_per_epoch * e.batch_size * e.context_length * e.grad_accum * max(1, e.world_size)
        )
        self.counters.set_epochs(e.epochs)
        self.counters.started_at = e.time
        prompt = self.playground.prompt_input
        if not prompt.value:
            suggestion = getattr(self.train_config, "sample_prompt", None)
            if suggestion is None and e.tokenizer == "gpt2":
                suggestion = "Every effort moves you"
            if suggestion:
                prompt.value = suggestion
        self.log_panel.add_event(e)
        self.plot.maybe_redraw(force=True)
        self._show_settings()
        self._refresh_checkpoints()
        self._schedule_probs(delay=0.2)

    def on_trainer_exited(self, message: TrainerExited) -> None:
        if not self.ui_alive:
            return
        if message.error:
            self.log_panel.add(message.error, "error")
            self.notify(message.error, title="training stopped", severity="error", timeout=12)
            self._set_state("error", "see log")

    # ========================================================== checkpoints
    def _refresh_checkpoints(self) -> None:
        run_dir = self.run_dir
        if run_dir is None or self.attached:
            return  # attach mode lists on its poll
        self._list_checkpoints(run_dir)

    @work(thread=True, group="ckpt-list", exit_on_error=False)
    def _list_checkpoints(self, run_dir: Path) -> None:
        from gptmini.checkpoint import list_checkpoints

        try:
            infos = list_checkpoints(run_dir)
        except Exception as exc:
            self.post_message(CheckpointsListed(str(run_dir), [], error=str(exc)))
            return
        self.post_message(CheckpointsListed(str(run_dir), infos))

    def on_checkpoints_listed(self, message: CheckpointsListed) -> None:
        if not self.ui_alive:
            return
        if self.run_dir is None or message.run_dir != str(self.run_dir):
            return
        if message.error:
            self.log_panel.add(f"cannot list checkpoints: {message.error}", "warning")
            return
        self.checkpoints.set_infos(message.infos)
        if self.attached:
            self._attach_infos = list(message.infos)
            newest = self._newest_checkpoint()
            if newest is not None:
                key = (str(newest.path), newest.mtime)
                if self._attach_model_key is not None and key != self._attach_model_key:
                    self.post_message(AttachModelChanged(newest.name, newest.step))

    def on_attach_model_changed(self, message: AttachModelChanged) -> None:
        if not self.ui_alive:
            return
        self.playground.set_status(self._status_text(f"newer checkpoint {message.name}: next reply uses it"))

    def _newest_checkpoint(self):
        good = [i for i in self._attach_infos if not getattr(i, "error", None)]
        if not good:
            return None
        latest = [i for i in good if i.is_latest]
        return latest[0] if latest else max(good, key=lambda i: i.step)

    @on(Button.Pressed, "#save-btn")
    def _save_button(self) -> None:
        self.run_action("save")

    @on(Button.Pressed, "#restore-btn")
    def _restore_button(self) -> None:
        self.run_action("restore")

    # ====================================================== actions: training
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        typing = isinstance(self.focused, Input) and self.focused.id == "prompt"
        if action in ("leave_prompt", "submit_prompt"):
            return typing
        if typing and action in TYPING_BLOCKED:
            return False
        if action in TRAINING_ACTIONS and self.attached:
            return None  # shown dimmed; the reason is on screen
        if action in ("pause", "resume", "toggle_pause"):
            if self.state not in ("running", "paused", "starting"):
                return None
            if action == "pause":
                return not self.pause_requested
            if action == "resume":
                return self.pause_requested
            return True
        if action in ("save", "restore") and not self._trainer_active():
            return None
        return True

    def _trainer_active(self) -> bool:
        t = self.trainer
        return bool(t is not None and t.is_active and self.state in ("running", "paused"))

    def action_pause(self) -> None:
        if self.trainer is None or self.attached:
            return
        self.trainer.pause()
        self.pause_requested = True
        if self.state == "starting":
            self.counters.set_state("starting", "will wait paused once loaded")
        else:
            self.counters.set_state("pausing", "after this step")  # the engine confirms with StateChanged

    def action_resume(self) -> None:
        if self.trainer is None or self.attached:
            return
        self.trainer.resume()
        self.pause_requested = False
        if self.state == "starting":
            self.counters.set_state("starting", "loading data and model…")
        else:
            self.counters.set_state("resuming")

    def action_toggle_pause(self) -> None:
        if self.pause_requested:
            self.action_resume()
        else:
            self.action_pause()

    def action_save(self) -> None:
        if self.attached:
            self.notify(ATTACHED_REASON, severity="warning")
            return
        t = self.trainer
        if not self._trainer_active():
            self.notify("saving needs a running or paused trainer", severity="warning")
            return
        self.notify("saving a checkpoint…", timeout=2)
        t.request_save("manual")

    def action_restore(self) -> None:
        if self.attached:
            self.notify(ATTACHED_REASON, severity="warning")
            return
        info = self.checkpoints.selected_info()
        self.show_panel("tab-ckpt")
        if info is None:
            self.notify("no checkpoint to restore yet (s saves one)", severity="warning")
            return
        if getattr(info, "error", None):
            self.notify(f"{info.name} is damaged: {info.error}", severity="error")
            return
        t = self.trainer
        if not self._trainer_active():
            self.notify("restoring needs a running or paused trainer", severity="warning")
            return
        unsaved = getattr(t, "steps_since_save", 0) if t is not None else 0
        current = self.bridge.latest_step.step if self.bridge and self.bridge.latest_step else None
        body = (
            f"Load {info.name} (step {info.step:,}, val loss {fmt.loss(info.val_loss)}) into the running trainer?\n"
            f"Training continues from step {info.step:,}"
            + (f"; the plot drops everything after it (now at step {current:,})." if current else ".")
            + (f"\n{unsaved} step(s) since the last save will be lost." if unsaved else "")
        )

        def answered(choice: str | None) -> None:
            if choice == "yes" and self.trainer is t and t is not None:
                self.log_panel.add(f"restoring {info.name}…", "save")
                t.request_restore(info.path)

        self.push_screen(ConfirmScreen("Restore checkpoint?", body), answered)

    def action_new_run(self) -> None:
        if self.attached:
            self.notify(ATTACHED_REASON, severity="warning")
            return
        note = "The current run keeps going until you start the new one."
        self.push_screen(NewRunScreen(self.train_config, note=note), self._new_run_configured)

    def _new_run_configured(self, config) -> None:
        if config is None:
            return
        t = self.trainer
        unsaved = t.steps_since_save if (t is not None and t.is_active) else 0
        if unsaved > 0:
            body = (
                f"The current run has {unsaved} step(s) since its last checkpoint.\n"
                "Save them before starting the new run?"
            )
            choices = [("cancel", "Cancel", "escape"), ("discard", "Discard", "d"), ("save", "Save first", "s")]

            def answered(choice: str | None) -> None:
                if choice in ("discard", "save"):
                    self._switch_run(config, save_first=choice == "save")

            self.push_screen(ConfirmScreen("Start a new run?", body, choices), answered)
        else:
            self._switch_run(config, save_first=False)

    @work(group="switch-run", exclusive=True, exit_on_error=False)
    async def _switch_run(self, config, save_first: bool) -> None:
        self.log_panel.add("stopping the current run for a new one…", "info")
        await self._stop_trainer(save_reason="new-run" if save_first else None)
        self._cancel_generation()
        self.start_paused = False
        self.log_panel.add("starting a new run", "info")
        self._start_trainer(config)

    async def _stop_trainer(self, save_reason: str | None) -> str | None:
        """Save (when asked and needed), stop, and wait (bounded) for the training thread.

        Returns a problem description, or None when everything went fine.
        """
        t, done, bridge = self.trainer, self._trainer_done, self.bridge
        if t is None:
            return None
        problem = None
        if save_reason and t.is_active and t.steps_since_save > 0:
            problem = await asyncio.to_thread(self._save_and_wait, t, bridge, save_reason, self.quit_save_timeout)
        t.stop(save=False)
        if done is not None:
            finished = await asyncio.to_thread(done.wait, self.stop_timeout)
            if not finished:
                problem = (problem + "; " if problem else "") + "the training thread did not stop in time"
            thread = self._train_thread
            if finished and thread is not None:  # let it end before the interpreter does (see Trainer's writer)
                await asyncio.to_thread(thread.join, 5.0)
        if bridge is not None:
            bridge.close()
        for worker in self.workers:
            if worker.group == "trainer":
                worker.cancel()
        return problem

    @staticmethod
    def _save_and_wait(trainer, bridge: EngineBridge | None, reason: str, timeout: float) -> str | None:
        """Blocking (worker thread): request a save and wait until it is on disk."""
        deadline = time.monotonic() + timeout
        try:
            path = trainer.request_save(reason).result(timeout=timeout)
        except Exception as exc:
            return f"could not save: {exc}"
        if bridge is None or path is None:
            return None
        while time.monotonic() < deadline:
            saved = bridge.last_saved
            if saved is not None and Path(saved.path) == Path(path):
                return None
            bridge.save_event.wait(0.05)
            bridge.save_event.clear()
        return f"saving {path} took longer than {timeout:.0f}s"

    # ===================================================== actions: general
    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_sections(), note=self._help_note()))

    def _help_note(self) -> str:
        if self.attached:
            return ATTACHED_REASON + "; the playground samples the newest checkpoint."
        return "Esc leaves the prompt so letter keys act again. Ctrl+P opens the command palette."

    def help_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        groups: dict[str, list[tuple[str, str]]] = {"Training": [], "Playground": [], "View": [], "App": []}
        section = {
            "toggle_pause": "Training", "save": "Training", "restore": "Training",
            "new_run": "Training", "compare": "Playground", "stop_generation": "Playground",
            "strategy": "Playground", "temperature": "Playground", "param": "Playground",
            "focus_prompt": "Playground", "refresh_probs": "Playground", "submit_prompt": "Playground",
            "leave_prompt": "Playground", "stop_or_hint": "Playground", "cycle_axis": "View",
            "next_panel": "View", "help": "App", "quit": "App",
        }
        descriptions = {
            "toggle_pause": "pause / resume training (--paused starts paused)",
            "save": "save a checkpoint now",
            "restore": "restore the highlighted checkpoint (asks first)",
            "new_run": "new run: data, preset, tokenizer, epochs, batch, lr",
            "compare": "run the prompt through every strategy, one under another",
            "stop_generation": "stop generating",
            "stop_or_hint": "stop generating",
            "focus_prompt": "type a prompt (Enter generates)",
            "submit_prompt": "generate from the prompt (in the prompt)",
            "leave_prompt": "leave the prompt (letter keys act again)",
            "cycle_axis": "loss plot x-axis: steps / tokens / epochs",
            "next_panel": "next panel: playground / checkpoints / log",
            "refresh_probs": "recompute the next-token probabilities now",
            "help": "this help",
            "quit": "quit (saves unsaved progress first)",
        }
        seen: set[tuple[str, str]] = set()
        for binding in self.BINDINGS:
            b = binding if isinstance(binding, Binding) else Binding(*binding)
            name = b.action.split("(")[0]
            if name == "resume":
                continue
            keys = ", ".join(self.get_key_display(Binding(k, b.action)) for k in b.key.split(","))
            desc = descriptions.get(name, b.description)
            if name in ("strategy", "temperature", "param"):
                desc = b.description
            if (keys, desc) in seen:
                continue
            seen.add((keys, desc))
            groups[section.get(name, "App")].append((keys, desc))
        groups["View"].append(("tab / shift+tab", "move focus between panels"))
        groups["App"].append(("ctrl+p", "command palette (every action by name)"))
        return [(title, rows) for title, rows in groups.items() if rows]

    def action_cycle_axis(self) -> None:
        axis = self.plot.cycle_axis()
        self.notify(f"loss plot x-axis: {axis}", timeout=1.5)

    def action_next_panel(self) -> None:
        tabs = self.tabs
        i = PANELS.index(tabs.active) if tabs.active in PANELS else 0
        self.show_panel(PANELS[(i + 1) % len(PANELS)])

    def show_panel(self, pane: str, focus=None) -> None:
        """Switch the bottom tabs and move focus into the new pane.

        Focus must move with the pane: a focused widget left in a hidden pane
        hands focus to a sibling, and TabbedContent follows focus back.
        """
        target = focus or {
            "tab-play": self.playground.transcript,
            "tab-ckpt": self.checkpoints.table,
            "tab-log": self.log_panel,
        }[pane]
        tabs = self.tabs
        if tabs.active == pane:
            target.focus()
            return
        # Park focus on the (always visible) tab bar while the panes swap. Synchronously: Widget.focus()
        # only queues the change, and a layout pass that runs first finds the focused widget hidden and
        # hands focus to a sibling in the old pane, which switched the tabs straight back (seen as a
        # rare failure of the restore test: 'r' left the Playground tab showing).
        tab_bar = tabs.query_one(Tabs)
        tab_bar.screen.set_focus(tab_bar, scroll_visible=False)
        tabs.active = pane
        self.call_after_refresh(target.focus)

    def action_focus_prompt(self) -> None:
        self.show_panel("tab-play", self.playground.prompt_input)

    def action_leave_prompt(self) -> None:
        self.playground.transcript.focus()

    def action_submit_prompt(self) -> None:
        self.action_focus_prompt()

    def action_stop_or_hint(self) -> None:
        if self.generating:
            self.action_stop_generation()
        else:
            self.notify("press q (or ctrl+q) to quit", title="quit?", timeout=3)

    # ================================================== actions: playground
    def action_strategy(self, strategy: str) -> None:
        self.settings = self.settings.with_strategy(strategy)
        self._settings_changed()

    def action_temperature(self, direction: int) -> None:
        if self.settings.strategy == "greedy":
            self.notify("greedy ignores temperature; pick 2-4 first", timeout=2)
        self.settings = self.settings.with_temperature(int(direction))
        self._settings_changed()

    def action_param(self, direction: int) -> None:
        if self.settings.strategy == "greedy":
            self.notify("greedy has no knob; 2 temperature, 3 top-k, 4 top-p", timeout=2)
            return
        self.settings = self.settings.with_param(int(direction), self.vocab_size)
        self._settings_changed()

    def _settings_changed(self) -> None:
        self._show_settings()
        self._schedule_probs()

    def _show_settings(self) -> None:
        self.playground.set_status(self._status_text())

    def _status_text(self, note: str = "") -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" ")
        t.append(self.settings.describe(), style="bold cyan")
        t.append(f"  max {self.settings.max_new_tokens} tok", style="dim")
        if self.attached:
            t.append("  · newest checkpoint", style="dim")
        else:
            t.append("  · live weights", style="dim")
        if self.generating:
            t.append("  · generating… x stops", style="bold yellow")
        if note:
            t.append(f"  · {note}", style="italic")
        return t

    @property
    def strategy_label(self) -> str:
        return self.settings.describe()

    @on(Input.Submitted, "#prompt")
    def _prompt_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.generate(event.value, [self.settings.strategy])

    @on(Input.Changed, "#prompt")
    def _prompt_changed(self, event: Input.Changed) -> None:
        self._schedule_probs()

    def action_compare(self) -> None:
        prompt = self.playground.prompt_input.value
        if self.tabs.active != "tab-play":
            self.show_panel("tab-play")
        self.generate(prompt, list(STRATEGIES))

    def action_stop_generation(self) -> None:
        if self._cancel_generation():
            self.notify("generation stopped", timeout=1.5)

    def _cancel_generation(self) -> bool:
        cancel = self._gen_cancel
        if cancel is not None and not cancel.is_set() and self.generating:
            cancel.set()
            return True
        return False

    def generate(self, prompt: str, strategies: list[str]) -> None:
        """Start streaming replies for ``prompt`` (one per strategy) in a thread worker."""
        if self.run_started is None and not self.attached:
            self.notify("the model is still loading", severity="warning")
            return
        if self._gen_cancel is not None:
            self._gen_cancel.set()
        self._generation += 1
        cancel = threading.Event()
        self._gen_cancel = cancel
        jobs = []
        for s in strategies:
            self._reply_seq += 1
            settings = self.settings.sampling(s)
            self.playground.add_reply(self._reply_seq, prompt, settings.describe())
            jobs.append((self._reply_seq, settings))
        self.generating = True
        self._show_settings()
        self._generate_worker(self._generation, prompt, jobs, cancel)

    @work(thread=True, exclusive=True, group="generate", exit_on_error=False)
    def _generate_worker(self, generation: int, prompt: str, jobs: list, cancel: threading.Event) -> None:
        from gptmini.omp import limit_this_thread
        from gptmini.sampling import Sampler, TokenEvent

        limit_this_thread(1)  # sample beside training without a second OpenMP team (gptmini/omp.py)

        try:
            src = self._get_sampling_model()
            sampler = Sampler(src.model, src.tokenizer)
        except Exception as exc:
            for reply_id, _s in jobs:
                self.post_message(ReplyFinished(reply_id, "", 0, 0.0, "error", _error_text(exc)))
            self.post_message(GenerationIdle(generation))
            return
        for reply_id, settings in jobs:
            if cancel.is_set():
                self.post_message(ReplyFinished(reply_id, "", 0, 0.0, "stopped"))
                continue
            self.post_message(ReplyStarted(reply_id, settings.describe(), src.step))
            text, n, last_post = "", 0, 0.0
            t0 = time.perf_counter()
            try:
                for tok in sampler.stream(prompt, settings, cancel):
                    text += tok.text
                    if tok.token_id != TokenEvent.FLUSH:
                        n += 1
                    now = time.perf_counter()
                    if now - last_post >= 0.03:  # ~30 updates/s is smooth; more is wasted terminal output
                        last_post = now
                        self.post_message(ReplyProgress(reply_id, text, n))
                reason = "stopped" if cancel.is_set() else "done"
                self.post_message(ReplyFinished(reply_id, text, n, time.perf_counter() - t0, reason))
            except Exception as exc:
                self.post_message(ReplyFinished(reply_id, text, n, time.perf_counter() - t0, "error", _error_text(exc)))
        self.post_message(GenerationIdle(generation))

    def on_reply_started(self, message: ReplyStarted) -> None:
        if not self.ui_alive:
            return
        reply = self.playground.get_reply(message.reply_id)
        if reply is not None:
            reply.start(message.label, message.weights_step)

    def on_reply_progress(self, message: ReplyProgress) -> None:
        if not self.ui_alive:
            return
        reply = self.playground.get_reply(message.reply_id)
        if reply is not None and not reply.finished:
            reply.progress(message.text, message.n_tokens)
            self.playground.follow()

    def on_reply_finished(self, message: ReplyFinished) -> None:
        if not self.ui_alive:
            return
        reply = self.playground.get_reply(message.reply_id)
        if reply is not None:
            reply.finish(message.text, message.n_tokens, message.seconds, message.reason, message.error)
            self.playground.follow()

    def on_generation_idle(self, message: GenerationIdle) -> None:
        if not self.ui_alive:
            return
        if message.generation == self._generation:
            self.generating = False
            self._show_settings()

    # ---------------------------------------------------- model for sampling
    def _get_sampling_model(self, max_age: float = 2.0) -> _Sampling:
        """Blocking (worker threads only): the weights the playground samples from."""
        with self._sampling_lock:
            cached = self._sampling
        if self.attached:
            return self._attach_sampling_model(cached)
        t = self.trainer
        if t is None:
            raise GPTMiniError("no training run")
        if cached is not None and (cached.step == t.step or time.monotonic() - cached.taken < max_age):
            return cached
        snap = t.snapshot(timeout=30.0)
        src = _Sampling(snap.model, snap.tokenizer, snap.step, "live")
        with self._sampling_lock:
            self._sampling = src
        return src

    def _attach_sampling_model(self, cached: _Sampling | None) -> _Sampling:
        from gptmini.checkpoint import list_checkpoints, load_for_inference

        infos = [i for i in list_checkpoints(self.attach_dir) if not getattr(i, "error", None)]
        if not infos:
            raise GPTMiniError("no checkpoint saved yet: the playground starts once the run saves one")
        latest = [i for i in infos if i.is_latest]
        newest = latest[0] if latest else max(infos, key=lambda i: i.step)
        key = (str(newest.path), newest.mtime)
        if cached is not None and key == self._attach_model_key:
            return cached
        model, tokenizer, _manifest = load_for_inference(newest.path, device="cpu")
        src = _Sampling(model, tokenizer, newest.step, newest.name)
        with self._sampling_lock:
            self._sampling = src
            self._attach_model_key = key
        return src

    # ------------------------------------------------- next-token distribution
    def _schedule_probs(self, delay: float = 0.3, fresh: bool = False) -> None:
        """Debounced request for the next-token distribution.

        Each call restarts the delay (typing, key repeats), but a pending request is never pushed back
        more than ``PROBS_MAX_WAIT`` past the first call: a steady stream of triggers (evals of a fast
        run arrive every fraction of a second) must not starve it.
        """
        if fresh:
            with self._sampling_lock:
                if self._sampling is not None and not self.attached:
                    self._sampling.taken = 0.0  # let the next request take a new snapshot
        now = time.monotonic()
        if self._probs_timer is None:
            self._probs_due_by = now + PROBS_MAX_WAIT
        else:
            self._probs_timer.stop()
        self._probs_timer = self.set_timer(min(delay, max(0.0, self._probs_due_by - now)), self._request_probs)

    def action_refresh_probs(self) -> None:
        self._schedule_probs(delay=0.0, fresh=True)

    def _request_probs(self) -> None:
        if not self.ui_alive:
            return
        self._probs_timer = None
        self._probs_due_by = 0.0
        if self.run_started is None and not self.attached:
            return
        prompt = self.playground.prompt_input.value
        if prompt == "" and (self.run_started is None or self.run_started.tokenizer == "char"):
            self.probs.show_message("type a prompt to see the next-token distribution")
            return
        self._probs_request += 1
        self._probs_worker(self._probs_request, prompt, self.settings.sampling())

    @work(thread=True, exclusive=True, group="probs", exit_on_error=False)
    def _probs_worker(self, request: int, prompt: str, settings) -> None:
        from gptmini.omp import limit_this_thread
        from gptmini.sampling import Sampler

        if request != self._probs_request:
            return  # a newer request is already queued
        label = settings.describe()
        limit_this_thread(1)  # see _generate_worker
        try:
            src = self._get_sampling_model()
            cands = Sampler(src.model, src.tokenizer).next_token_distribution(prompt, settings, top_n=10)
        except Exception as exc:
            self.post_message(DistributionReady(request, prompt, label, [], None, _error_text(exc)))
            return
        self.post_message(DistributionReady(request, prompt, label, cands, src.step))

    def on_distribution_ready(self, message: DistributionReady) -> None:
        if not self.ui_alive:
            return
        if message.request != self._probs_request:
            return
        view = self.probs
        if message.error:
            view.show_message(message.error)
        else:
            view.show_candidates(message.candidates, message.label, message.weights_step)
        step = f" · step {message.weights_step:,}" if message.weights_step is not None else ""
        view.border_title = f"next token{step}"

    # ============================================================ palette
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if not isinstance(screen, Screen) or screen is not self.screen_stack[0]:
            return
        commands = [
            ("Pause / resume training", "space", "toggle_pause"),
            ("Save checkpoint", "s: save the current weights and optimizer", "save"),
            ("Restore checkpoint", "r: load the highlighted checkpoint into the trainer", "restore"),
            ("New run", "n: configure and start a new training run", "new_run"),
            ("Compare strategies", "c: same prompt through greedy, temperature, top-k, top-p", "compare"),
            ("Stop generation", "x: stop the reply being generated", "stop_generation"),
            ("Strategy: greedy", "1", "strategy('greedy')"),
            ("Strategy: temperature", "2", "strategy('temperature')"),
            ("Strategy: top-k", "3", "strategy('top-k')"),
            ("Strategy: top-p", "4", "strategy('top-p')"),
            ("Temperature up", "]", "temperature(1)"),
            ("Temperature down", "[", "temperature(-1)"),
            ("Strategy knob up (k / p / T)", "+", "param(1)"),
            ("Strategy knob down (k / p / T)", "-", "param(-1)"),
            ("Toggle loss x-axis", "a: steps / tokens / epochs", "cycle_axis"),
            ("Next panel", "v: playground / checkpoints / log", "next_panel"),
            ("Focus prompt", "i", "focus_prompt"),
            ("Refresh next-token probabilities", "d", "refresh_probs"),
            ("Show keys", "?", "help"),
        ]
        for title, help_text, action in commands:
            name = action.split("(")[0]
            if self.attached and name in TRAINING_ACTIONS:
                continue
            yield SystemCommand(title, help_text, lambda a=action: self.run_action(a))

    # ================================================================ quit
    def on_unmount(self) -> None:
        """Last resort (crash, forced exit): never leave the training thread running into interpreter exit."""
        t, done = self.trainer, self._trainer_done
        if self._gen_cancel is not None:
            self._gen_cancel.set()
        if t is not None and done is not None and not done.is_set():
            t.stop(save=False)
            done.wait(self.stop_timeout)

    @on(StopSignal)
    async def _stop_signal(self, message: StopSignal) -> None:
        """SIGTERM or a hung-up terminal: quit as on ``q`` (save unsaved steps); a second SIGTERM quits now."""
        self.log_panel.add(f"{message.name}: quitting", "warning")
        await self.action_quit()

    async def action_quit(self) -> None:
        if self._quitting:
            # second press: leave now, without waiting for the save
            self.exit(1, message="quit without waiting for the checkpoint")
            return
        self._quitting = True
        self._cancel_generation()
        t = self.trainer
        if t is not None and t.is_active and t.steps_since_save > 0:
            self.notify(
                f"saving {t.steps_since_save} unsaved step(s) before quitting… (q again: quit now)",
                title="quitting", timeout=30,
            )
            self._set_state("stopping", "saving before quit")
        self._quit_worker()

    @work(group="quit", exclusive=True, exit_on_error=False)
    async def _quit_worker(self) -> None:
        problem = await self._stop_trainer(save_reason="quit")
        if problem:
            self.quit_report = problem
            self.exit(1, message=f"warning: {problem}")
        else:
            saved = self.bridge.last_saved if self.bridge is not None else None
            if saved is not None and saved.reason == "quit":
                self.quit_report = f"saved {saved.path}"
            self.exit(0)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, GPTMiniError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"

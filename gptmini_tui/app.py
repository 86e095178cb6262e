"""GPTMiniApp: the training console -- the wiring.

The app builds a ``RunSession`` (the run: a trainer on its thread, or a follower of another process's
run folder) and the ``MainScreen`` that shows it, and owns what belongs to the whole program: the
terminal driver, quitting (which stops the run with a save of its last step), and signals from
outside (SIGTERM, a hung-up terminal) that quit the same way.

Threads and who may touch what:

* the training thread runs ``Trainer.run()``; its only link to the UI is the session's listener
  ``EngineBridge`` (``post_message``);
* thread workers do everything slow -- sampling and next-token distributions (the playground and
  probs panes own theirs), checkpoint listings (the checkpoints pane), attach-mode polling, stopping
  the run -- and talk back with ``post_message`` only;
* the UI thread owns every widget.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App
from gptmini.session import RunSession
from gptmini_tui import actions
from gptmini_tui.messages import QuitReady, StopSignal
from gptmini_tui.screens.main import MainScreen


class GPTMiniApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "GPTMini"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = actions.app_bindings()
    COMMAND_PALETTE_BINDING = actions.PALETTE_KEY

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
        compare: list[Path] | None = None,
    ) -> None:
        super().__init__()
        self.session = RunSession(trainer_factory=trainer_factory, save_timeout=quit_save_timeout,
                                  stop_timeout=stop_timeout)
        self._screen_options = dict(config=train_config, attach=Path(attach) if attach else None,
                                    start_paused=start_paused, clock=clock, ui_interval=ui_interval,
                                    plot_interval=plot_interval, attach_interval=attach_interval, compare=compare)
        self.main: MainScreen | None = None  # made when the app starts (widgets need a running app)
        self.quit_report: str | None = None  # printed after the app exits ("saved …", or what went wrong)
        self._quitting = False

    def get_driver_class(self):
        driver = super().get_driver_class()
        if driver.__name__ == "LinuxDriver":  # not a driver chosen by TEXTUAL_DRIVER, nor Windows
            from gptmini_tui.driver import ConsoleDriver

            return ConsoleDriver
        return driver

    def get_default_screen(self) -> MainScreen:
        self.main = MainScreen(self.session, **self._screen_options)
        return self.main

    def on_unmount(self) -> None:
        """Last resort (crash, forced exit): never leave the training thread running into interpreter exit."""
        self.main.playground.cancel()
        self.session.close(wait=self.session.stop_timeout)

    @on(StopSignal)
    async def _stop_signal(self, message: StopSignal) -> None:
        """SIGTERM or a hung-up terminal: quit as on ``q`` (save unsaved steps); a second SIGTERM quits now."""
        self.main.log_panel.add(f"{message.name}: quitting", "warning")
        await self.action_quit()

    async def action_quit(self) -> None:
        if self._quitting:  # second press: leave now, without waiting for the save
            self.exit(return_code=1, message="quit without waiting for the checkpoint")
            return
        self._quitting = True
        self.main.playground.cancel()
        session = self.session
        if session.is_active and session.steps_since_save > 0:
            self.notify(f"saving {session.steps_since_save} unsaved step(s) before quitting… "
                        f"({actions.key('quit')} again: quit now)", title="quitting", timeout=30)
            self.main.set_state("stopping", "saving before quit")
        self._stop_for_quit()

    @work(thread=True, group="quit", exclusive=True, exit_on_error=False)
    def _stop_for_quit(self) -> None:
        self.post_message(QuitReady(self.session.stop(save_reason="quit")))

    @on(QuitReady)
    def _quit_ready(self, message: QuitReady) -> None:
        failed = self.session.record.save_errors
        problem = message.problem or (f"{len(failed)} checkpoint save(s) failed during the run "
                                      f"(the last: {failed[-1].message})" if failed else None)
        saved = self.session.record.last_saved
        self._show_the_end(saved)
        if problem:
            self.quit_report = problem
            self.call_after_refresh(self.exit, return_code=1, message=f"warning: {problem}")
            return
        if saved is not None and saved.reason == "quit":
            self.quit_report = f"saved {saved.path}"
        self.call_after_refresh(self.exit, 0)  # once the last frame shows what is saved

    def _show_the_end(self, saved) -> None:
        """The last frame, from the session itself (the screen may not have taken in the last events yet):
        the last step trained, its unsaved count, the state the run ended in and the step saved."""
        session = self.session
        self.main.counters.show_step(session.record.latest_step, session.steps_since_save, force=True)
        self.main.set_state(session.state, f"saved step {saved.step:,}" if saved is not None else "")

"""The console's terminal driver: Textual's Linux driver, continued correctly after an outside stop.

On Ctrl+Z (SIGTSTP) Textual leaves application mode before the process stops, and enters it again
on SIGCONT. A process stopped from outside (``kill -STOP``, a job-control or scheduling tool, a
benchmark that runs programs in turns) is continued with SIGCONT while it never left application
mode, and Textual 8 then starts it a second time: one more input reader thread and one more
output writer thread on every continue, plus a full repaint. The readers never exit; each polls
the terminal ten times a second and they race for the same keystrokes.

This driver re-enters application mode only when it had left it. After an outside stop it checks
the terminal settings: if something changed them while the process was stopped (bash does, when
it reports the job stopped and takes the terminal back), it leaves and re-enters application mode
once and repaints the whole screen; otherwise nothing else used the terminal and nothing needs
doing.
"""

from __future__ import annotations

import termios
from typing import Any

from textual.drivers.linux_driver import LinuxDriver


class ConsoleDriver(LinuxDriver):
    _app_mode_attrs: list[Any] | None = None

    def start_application_mode(self) -> None:
        super().start_application_mode()
        self._app_mode_attrs = self._terminal_attrs()

    def _terminal_attrs(self) -> list[Any] | None:
        if not self.input_tty:
            return None
        try:
            return termios.tcgetattr(self.fileno)
        except termios.error:
            return None

    def _in_application_mode(self) -> bool:
        return self._key_thread is not None and self._key_thread.is_alive()

    def _sigcont_application(self, *args: Any) -> None:
        if not (self._auto_restart and self._in_application_mode()):
            super()._sigcont_application(*args)  # Textual's own suspend (Ctrl+Z, App.suspend)
            return
        if self._app_mode_attrs is not None and self._terminal_attrs() != self._app_mode_attrs:
            self.suspend_application_mode()
            self.resume_application_mode()
            # Whatever the shell printed is gone with the alternate screen; a resize to the same
            # size repaints nothing, so ask for the whole screen.
            self._loop.call_soon_threadsafe(self._repaint)

    def _repaint(self) -> None:
        if self._app._screen_stack:
            self._app.screen.refresh(layout=True)

"""The console's terminal driver: Textual's Linux driver, made safe for signals from outside.

On Ctrl+Z (SIGTSTP) Textual leaves application mode before the process stops, and enters it again
on SIGCONT. A process stopped from outside (``kill -STOP``, a job-control or scheduling tool, a
benchmark that runs programs in turns) is continued with SIGCONT while it never left application
mode, and Textual 8 then starts it a second time: one more input reader thread and one more
output writer thread on every continue. The readers never exit; each polls the terminal ten times
a second and they race for the same keystrokes.

This driver re-enters application mode only when it had left it. After an outside stop it checks
the terminal settings: if something changed them while the process was stopped (bash does, when
it reports the job stopped and takes the terminal back), it leaves and re-enters application mode
once and repaints the whole screen; otherwise nothing else used the terminal and nothing needs
doing.

SIGTERM and a hang-up (SIGHUP, or, where SIGHUP is ignored, the terminal polled as hung up: the
SSH connection dropped, the window closed) become a ``StopSignal`` message, so the console saves
unsaved training and exits as on ``q`` instead of dying with its progress. After a hang-up, output
to the dead terminal is dropped: Textual's writer thread would otherwise die on the first EIO and
the app would then block on its full output queue.
"""

from __future__ import annotations

import select
import signal
import termios
from typing import Any

from gptmini_tui.compat import LinuxDriverHooks
from gptmini_tui.messages import StopSignal

HANGUP_CHECK_S = 1.0


class _TerminalOutput:
    """The terminal's output stream; once the terminal has hung up, output is dropped, not raised."""

    def __init__(self, file) -> None:
        self._stream = file
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self._stream.write(text)
            except OSError:  # EIO: the terminal hung up
                self.lost = True
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except OSError:
                self.lost = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class ConsoleDriver(LinuxDriverHooks):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app_mode_attrs: list[Any] | None = None
        self._hangup_poll: select.poll | None = None
        self._hung_up = False
        self._output = _TerminalOutput(self.output_stream)
        self.output_stream = self._output
        signal.signal(signal.SIGTERM, self._stop_signal)
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # nohup: then the terminal poll tells
            signal.signal(signal.SIGHUP, self._stop_signal)

    def _stop_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            self._hang_up()
        else:
            self.event_loop.call_soon_threadsafe(self.textual_app.post_message, StopSignal("SIGTERM"))

    def _hang_up(self) -> None:
        if self._hung_up:
            return
        self._hung_up = self._output.lost = True
        self.exit_event.set()  # the input thread stops reading the dead terminal
        self.event_loop.call_soon_threadsafe(self.textual_app.post_message, StopSignal("hangup"))

    def start_application_mode(self) -> None:
        super().start_application_mode()
        self._app_mode_attrs = self._terminal_attrs()
        if self.input_tty and self._hangup_poll is None:
            self._hangup_poll = select.poll()
            self._hangup_poll.register(self.fileno, select.POLLIN)
            self.event_loop.call_later(HANGUP_CHECK_S, self._check_hangup)

    def _check_hangup(self) -> None:
        """Has the terminal hung up? Needed where SIGHUP is ignored (nohup): reading a hung-up terminal
        returns end-of-file, which Textual's reader takes for piped input and then spins on. Output that
        failed to reach the terminal (EIO) tells the same."""
        if self._hung_up:
            return
        if self._output.lost or any(mask & select.POLLHUP for _fd, mask in self._hangup_poll.poll(0)):
            self._hang_up()
        else:
            self.event_loop.call_later(HANGUP_CHECK_S, self._check_hangup)

    def _terminal_attrs(self) -> list[Any] | None:
        if not self.input_tty:
            return None
        try:
            return termios.tcgetattr(self.fileno)
        except termios.error:
            return None

    def on_continued(self) -> None:
        if self._hung_up or self._output.lost:  # the kernel sends SIGCONT with SIGHUP: nothing to draw on
            return
        if not (self.auto_restart and self.reading_keys):
            super().on_continued()  # Textual's own suspend (Ctrl+Z, App.suspend)
            return
        now = self._terminal_attrs()
        if now is not None and self._app_mode_attrs is not None and now != self._app_mode_attrs:
            self.suspend_application_mode()
            self.resume_application_mode()
            # Whatever the shell printed is gone with the alternate screen; a resize to the same
            # size repaints nothing, so ask for the whole screen.
            self.event_loop.call_soon_threadsafe(self._repaint)

    def _repaint(self) -> None:
        app = self.textual_app
        if app.screen_stack:
            app.screen.refresh(layout=True)

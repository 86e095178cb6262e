"""Every private name of Textual, textual-plotext and plotext that the console relies on, in one place.

Textual is pinned to the major version these hooks were written for (``pyproject.toml``), and
``tests/tui/test_compat.py`` exercises each hook, so an upgrade that moves one fails there, by name,
instead of somewhere in the console. Nothing outside this module touches a private name of those
libraries.
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual.drivers.linux_driver import LinuxDriver

TESTED_TEXTUAL_MAJOR = 8


class LinuxDriverHooks(LinuxDriver):
    """Textual's Linux driver with the private parts ``ConsoleDriver`` needs under public names."""

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def textual_app(self) -> Any:
        return self._app

    @property
    def auto_restart(self) -> bool:
        """Textual suspends and resumes application mode itself (Ctrl+Z, ``App.suspend``)."""
        return self._auto_restart

    @property
    def reading_keys(self) -> bool:
        """The input thread of application mode is alive."""
        return self._key_thread is not None and self._key_thread.is_alive()

    @property
    def output_stream(self) -> Any:
        """What the driver (and its writer thread, started later) writes the screen to."""
        return self._file

    @output_stream.setter
    def output_stream(self, stream: Any) -> None:
        self._file = stream

    def on_continued(self) -> None:
        """SIGCONT arrived. Textual's own answer: enter application mode again (after its Ctrl+Z)."""
        LinuxDriver._sigcont_application(self)

    def _sigcont_application(self, *_: Any) -> None:  # Textual's SIGCONT handler
        self.on_continued()


def plotext_theme_name(plot: Any, app_theme: str) -> str:
    """The plotext theme ``PlotextPlot.render`` would use for ``app_theme`` (registered on first use)."""
    return plot._get_plotext_theme_name(app_theme)


def plotext_set_size(plt: Any, width: int, height: int) -> None:
    """Size a plotext figure as ``PlotextPlot.render`` does before building (textual-plotext issue #5)."""
    plt._set_size(width, height)

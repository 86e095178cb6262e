"""Each private hook in ``gptmini_tui.compat`` still finds what it reaches for.

Textual is pinned to one major version; when an upgrade inside it (or of textual-plotext / plotext)
moves a private name, these tests fail and name the hook, instead of the console misbehaving.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from textual.app import App
from textual.drivers.linux_driver import LinuxDriver
from textual_plotext import PlotextPlot

import gptmini_tui
from gptmini_tui import compat

PRIVATE_NAMES = ("_sigcont_application", "_key_thread", "_auto_restart", "_closing", "_screen_stack",
                 "_get_plotext_theme_name", "_set_size", "_notifications", "_character_to_key",
                 "_get_unicode_name_from_key", "_press_keys")


def test_the_installed_textual_is_the_major_version_the_hooks_were_written_for():
    assert int(version("textual").split(".")[0]) == compat.TESTED_TEXTUAL_MAJOR


def test_no_module_but_compat_touches_a_private_name_of_the_libraries():
    root = Path(gptmini_tui.__file__).parent
    pattern = re.compile(r"\.(" + "|".join(PRIVATE_NAMES) + r")\b|\._(loop|app|file)\b")
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "compat.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert offenders == []


@pytest.mark.skipif(sys.platform == "win32", reason="the Linux driver")
async def test_the_linux_driver_hooks_reach_textuals_driver_internals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTSTP, signal.SIGCONT)}
    try:
        app = App()
        driver = compat.LinuxDriverHooks(app)
        assert driver.event_loop is asyncio.get_running_loop()
        assert driver.textual_app is app
        assert isinstance(driver.auto_restart, bool)
        assert driver.reading_keys is False  # application mode not started
        assert driver.output_stream is sys.__stderr__
        stream = object()
        driver.output_stream = stream
        assert driver.output_stream is stream
        # Textual answers SIGCONT with the method the hook overrides
        assert signal.getsignal(signal.SIGCONT) == driver._sigcont_application
        assert callable(LinuxDriver._sigcont_application)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


async def test_the_plotext_hooks_size_and_theme_a_plot():
    class PlotApp(App):
        def compose(self):
            yield PlotextPlot()

    app = PlotApp()
    async with app.run_test(size=(60, 20)):
        plot = app.query_one(PlotextPlot)
        name = compat.plotext_theme_name(plot, app.theme)
        assert isinstance(name, str) and name
        plt = plot.plt
        plt.clear_figure()
        plt.plot([1, 2, 3], [3, 1, 2])
        compat.plotext_set_size(plt, 40, 10)
        plt.theme(name)
        lines = plt.build().splitlines()
        assert len(lines) == 10

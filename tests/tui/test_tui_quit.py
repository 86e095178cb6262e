"""After ``q`` the last screen shows what is saved, even when the console has not yet taken in the engine's
last events (the save, the end) when the run is ready to quit."""

from __future__ import annotations

import pytest
from tui_helpers import current_step, press, wait_until

from gptmini.events import RunState
from gptmini_tui.app import GPTMiniApp
from gptmini_tui.bridge import EngineBridge

pytestmark = pytest.mark.timeout(120)


async def test_the_last_screen_after_quit_shows_the_saved_step(tiny_config):
    app = GPTMiniApp(tiny_config(eval_interval=100_000))  # no automatic saves
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: current_step(app) >= 5, 60, "5 training steps")
        for listener in app.session._listeners:  # a console behind: the engine's last events never arrive
            if isinstance(listener, EngineBridge):
                listener._post = lambda message: True
        await press(pilot, "q", until=lambda: not app.is_running, what="the app to exit")
    saved = app.session.record.last_saved
    counters = app.main.counters
    assert saved is not None and saved.reason == "quit" and saved.step == current_step(app)
    assert counters.newest.step == saved.step and counters.unsaved == 0
    assert counters.state_label.state == RunState.FINISHED and f"saved step {saved.step:,}" in counters.state_label.detail

"""The footer as a user reads it: at any width, the keys that fit, each whole (key and label) and
between separators, the pinned ones (help, pause, quit) and the command palette always.

Textual's own footer clipped its row at the screen's edge under the palette key: at 100 columns
``… [] T -+ k/pq ▏^p palette``, at 120 ``… l Log y ▏^p palettes`` (a cut word, labels run together).
The rows are read from the rendered screen (``App.export_screenshot``).
"""

from __future__ import annotations

import pytest
from tui_helpers import T0, press, screen_lines, wait_until, write_static_run

from gptmini_tui import actions
from gptmini_tui.actions import PALETTE_ENTRY, FooterEntry
from gptmini_tui.app import GPTMiniApp
from gptmini_tui.screens.help import HelpScreen
from gptmini_tui.widgets import KeyFooter
from gptmini_tui.widgets.footer import SEPARATOR, fit

pytestmark = pytest.mark.timeout(120)

WIDTHS = [80, 100, 120, 160]


def live_entries(app) -> list[FooterEntry]:
    """The footer's entries for what the screen can do now (in table order)."""
    return actions.footer_entries(lambda a: app.screen.check_action(a.name, ()))


async def footer_row(pilot) -> str:
    """The bottom row of the screen, once the footer shows what the screen can do now."""
    app = pilot.app
    footer = app.screen.query_one(KeyFooter)
    await wait_until(pilot, lambda: footer.shown and set(footer.shown) <= set(live_entries(app)), 30, "the footer")
    await pilot.pause()  # one more refresh: the row on screen is the one just rendered
    return screen_lines(app)[-1]


def check_row(row: str, width: int, entries: list[FooterEntry]) -> list[str]:
    """Every part of ``row`` is a whole entry of the table, in the table's order, and none that was left
    out would have fitted; returns the texts shown."""
    assert len(row) <= width, row
    assert row.endswith(" " + PALETTE_ENTRY.text), row  # "^p palette", whole, at the right
    left = row[: -len(PALETTE_ENTRY.text)].rstrip()
    shown = left.split(SEPARATOR)
    texts = [e.text for e in entries]
    assert all(text in texts for text in shown), f"not an entry of the table (cut or run together): {row!r}"
    assert shown == [t for t in texts if t in shown], f"not in the table's order: {row!r}"
    room = width - len(PALETTE_ENTRY.text) - len(SEPARATOR) - len(left)
    assert all(len(SEPARATOR) + len(t) > room for t in texts if t not in shown), f"an entry would fit: {row!r}"
    return shown


@pytest.mark.parametrize("width", WIDTHS)
async def test_a_training_runs_footer_shows_whole_entries_at_every_width(tiny_config, width):
    app = GPTMiniApp(tiny_config(), start_paused=True)
    async with app.run_test(size=(width, 40)) as pilot:
        await wait_until(pilot, lambda: app.session.state == "paused", 60, "the paused run")
        row = await footer_row(pilot)
        shown = check_row(row, width, live_entries(app))
        assert {"? Help", "space Pause", "q Quit"} <= set(shown), row
        assert len(shown) >= (7 if width >= 100 else 5), row


@pytest.mark.parametrize("width", WIDTHS)
async def test_an_attached_consoles_footer_leaves_out_the_trainers_keys(tmp_path, width):
    write_static_run(tmp_path / "demo")
    app = GPTMiniApp(attach=tmp_path / "demo", clock=lambda: T0 + 100)
    async with app.run_test(size=(width, 40)) as pilot:
        await wait_until(pilot, lambda: app.session.state == "paused", 30, "the static run")
        row = await footer_row(pilot)
        shown = check_row(row, width, live_entries(app))
        assert {"? Help", "q Quit"} <= set(shown), row
        assert not {"space Pause", "s Save", "r Restore", "n New"} & set(shown), row  # the training process's


async def test_while_typing_the_footer_shows_the_prompts_keys(tmp_path):
    write_static_run(tmp_path / "demo")
    app = GPTMiniApp(attach=tmp_path / "demo", clock=lambda: T0 + 100)
    async with app.run_test(size=(120, 40)) as pilot:
        main = app.main
        await wait_until(pilot, lambda: app.session.state == "paused", 30, "the static run")
        await press(pilot, "i", until=lambda: main.typing, what="the prompt focused")
        row = await footer_row(pilot)
        shown = check_row(row, 120, live_entries(app))
        assert {"Enter Generate", "Esc Leave prompt"} <= set(shown), row
        assert "? Help" not in shown and "q Quit" not in shown, row  # they type into the prompt now


async def test_a_click_on_an_entry_presses_its_key(tmp_path):
    write_static_run(tmp_path / "demo")
    app = GPTMiniApp(attach=tmp_path / "demo", clock=lambda: T0 + 100)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_until(pilot, lambda: app.session.state == "paused", 30, "the static run")
        row = await footer_row(pilot)
        await pilot.click(KeyFooter, offset=(row.index("Help"), 0))
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), 30, "the help screen")


def entry(text: str, pinned: bool = False) -> FooterEntry:
    key, label = text.split(" ", 1)
    return FooterEntry((key,), (key,), label, pinned, True)


def test_fit_keeps_the_pinned_entries_then_the_others_in_order_while_they_fit():
    entries = [entry("? Help", True), entry("s Save"), entry("r Restore"), entry("x Stop"), entry("q Quit", True)]
    assert [e.text for e in fit(entries, 100)] == [e.text for e in entries]
    # the pinned two take 6 + 3 + 6; then " · s Save" takes 9 more, and "r Restore" (12) and "x Stop" (9) do not fit
    assert [e.text for e in fit(entries, 25)] == ["? Help", "s Save", "q Quit"]
    assert [e.text for e in fit(entries, 23)] == ["? Help", "q Quit"]
    # one too long is skipped for a shorter one after it
    assert [e.text for e in fit(entries[:1] + entries[2:], 26)] == ["? Help", "x Stop", "q Quit"]
    assert fit(entries, 5) == []


@pytest.mark.parametrize("width", [120, 160])
async def test_a_key_press_leaves_the_footer_as_it_was(tiny_config, width):
    """Pressing a key that changes no state (d: recompute the next-token view) keeps the footer's entries."""
    app = GPTMiniApp(tiny_config(), start_paused=True)
    async with app.run_test(size=(width, 40)) as pilot:
        await wait_until(pilot, lambda: app.session.state == "paused", 60, "the paused run")
        before = await footer_row(pilot)
        probs = app.screen.probs
        asked = probs._request
        await press(pilot, actions.key("refresh_probs"), until=lambda: probs._answered > asked,
                    what="the next-token view recomputed")
        assert await footer_row(pilot) == before

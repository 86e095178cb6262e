"""The new-run form says, in each blank field, what the run would use for the preset chosen in it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.app import App
from textual.widgets import Input, Select
from tui_helpers import wait_until

from gptmini.presets import PRESETS
from gptmini.train.plan import model_config_for, plan_run
from gptmini_tui.screens.new_run import NewRunScreen

SIZE = (120, 50)
SHAPE = {"n_layers": "n_layers", "n_heads": "n_heads", "d_model": "d_model", "context": "context_length"}


class FormApp(App):
    def __init__(self, base=None) -> None:
        super().__init__()
        self.base = base

    def on_mount(self) -> None:
        self.push_screen(NewRunScreen(self.base))


def shown_number(form, name: str) -> float:
    """The number a blank field's placeholder starts with ("5e-3 (cpu-demo recipe)": 0.005)."""
    return float(form.query_one(f"#f-{name}", Input).placeholder.split()[0])


async def choose(pilot, form, preset: str) -> None:
    form.query_one("#f-preset", Select).value = preset
    await wait_until(pilot, lambda: form.result_config is not None and form.result_config.preset == preset
                     and preset in form.tokenizer_choices[0][0] and preset in form.query_one("#f-lr", Input).placeholder
                     + form.query_one("#f-n_layers", Input).placeholder, 30, f"the form to show {preset}'s defaults")


def check_placeholders(form) -> None:
    """Every number the form shows in a blank field is what the run it builds uses."""
    config = form.result_config
    plan = plan_run(config, batches_per_epoch=10_000, device_type="cpu")
    model = model_config_for(config, 256)
    used = {**{name: getattr(model, attr) for name, attr in SHAPE.items()},
            "lr": plan.lr, "batch_size": config.batch_size, "epochs": config.epochs}
    blank = [name for name in used if not form.query_one(f"#f-{name}", Input).value]
    assert "lr" in blank
    for name in blank:
        said = form.query_one(f"#f-{name}", Input).placeholder
        assert shown_number(form, name) == used[name], (config.preset, name, said)
    preset_tokenizer = replace(config, tokenizer=None).tokenizer_name  # the menu's first entry
    assert form.tokenizer_choices[0][0].startswith(f"preset's: {preset_tokenizer} ("), form.tokenizer_choices


async def test_each_presets_defaults_show_in_the_blank_fields(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output folder, checkpoints/<run name>, must be writable
    app = FormApp()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen) and app.screen.result_config is not None,
                         30, "the form")
        form = app.screen
        assert form.query_one("#f-lr", Input).placeholder == "5e-3 (cpu-demo recipe)"  # the console's own run
        for preset in PRESETS:
            await choose(pilot, form, preset)
            check_placeholders(form)
        assert form.query_one("#f-lr", Input).placeholder.startswith("6e-4 (")  # gpt2-medium: 1024 wide
        # a width typed in: the general rate for that width, not the preset's recipe
        await choose(pilot, form, "cpu-demo")
        form.query_one("#f-d_model", Input).value = "256"
        await wait_until(pilot, lambda: form.result_config is not None and form.result_config.d_model == 256,
                         30, "the form to read d_model 256")
        assert form.query_one("#f-lr", Input).placeholder == "1e-3 (256 wide)"
        check_placeholders(form)


@pytest.mark.parametrize("tokenizer", ["char", None])
async def test_a_base_config_keeps_its_choices_while_the_defaults_follow_the_preset(tiny_config, tokenizer):
    app = FormApp(tiny_config(tokenizer=tokenizer))  # d_model 32: the lr follows that width
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen) and app.screen.result_config is not None,
                         30, "the form")
        form = app.screen
        assert form.query_one("#f-lr", Input).placeholder == "1e-3 (32 wide)"
        check_placeholders(form)
        await choose(pilot, form, "nanogpt-cpu")
        check_placeholders(form)
        # the choice is kept when the menu's words change
        assert form.query_one("#f-tokenizer", Select).value == (tokenizer or "default")
        assert form.result_config.tokenizer == tokenizer

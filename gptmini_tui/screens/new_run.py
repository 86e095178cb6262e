"""New-run form: builds a ``TrainConfig`` and shows its ``ConfigError`` inline.

Every field is read as the command line reads its option (``gptmini.options.read_option``) and checked
as the command line checks it (``TrainConfig.validate``, ``check_run_paths``): the same messages.
"""

from __future__ import annotations

from dataclasses import replace

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from gptmini.errors import ConfigError, GPTMiniError
from gptmini.options import BY_NAME, default_words, read_option
from gptmini.paths import check_run_paths
from gptmini.presets import PRESETS, preset_default
from gptmini.text.corpus import CORPUS_NAMES
from gptmini.train_config import TrainConfig
from gptmini_tui.actions import binding_hint, key_display

FIELDS: list[tuple[str, str, str]] = [
    # (field, label, how to type it); the placeholder adds what a blank field means (``placeholder``)
    ("data", "data files", "path(s) to .txt, comma separated"),
    ("corpus", "corpus", f"named: {', '.join(CORPUS_NAMES)}"),
    ("n_layers", "layers", ""),
    ("n_heads", "heads", ""),
    ("d_model", "d_model", ""),
    ("context", "context", ""),
    ("epochs", "epochs", ""),
    ("batch_size", "batch size", ""),
    ("lr", "learning rate", ""),
    ("max_steps", "max steps", ""),
    ("run_name", "run name", ""),
    ("out", "output folder", ""),
]
DEFAULT_TOKENIZER = "default"  # the tokenizer choice that leaves it to the preset


def placeholder(name: str, hint: str, preset: str, d_model: int | None = None) -> str:
    """Field ``name``'s placeholder: how to type it, and what the run uses if it is left blank, for ``preset``
    (and the ``d_model`` typed, which the learning rate follows): ``5e-3 (cpu-demo recipe)``."""
    words = default_words(name, preset, d_model)
    if hint and words:
        return f"{hint}; blank: {words}"
    return hint or words


def tokenizer_choices(preset: str, init_from: str | None = None) -> list[tuple[str, str]]:
    """The tokenizer menu; its first entry says which one the preset (or ``--init-from``) gives."""
    default = "gpt2 (--init-from)" if init_from else str(preset_default("tokenizer", preset))
    return [(f"preset's: {default}", DEFAULT_TOKENIZER), ("gpt2 (BPE)", "gpt2"), ("char", "char")]


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


class NewRunScreen(ModalScreen["object | None"]):
    DEFAULT_CSS = """
    NewRunScreen { align: center middle; }
    NewRunScreen > #form {
        width: 90; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    NewRunScreen #fields { height: auto; max-height: 100%; }
    NewRunScreen Grid { grid-size: 2; grid-columns: 15 1fr; grid-rows: 1; height: auto; grid-gutter: 0 1; }
    NewRunScreen Grid Label { width: 100%; color: $text-muted; }
    NewRunScreen Grid Input, NewRunScreen Grid Select { width: 1fr; }
    NewRunScreen #form-note { color: $text-muted; margin-bottom: 1; }
    NewRunScreen #form-error { color: $error; height: auto; padding: 0 1; margin-top: 1; }
    NewRunScreen #form-error.-ok { color: $success; }
    NewRunScreen #form-buttons { height: auto; align-horizontal: right; padding: 0 0 0 0; }
    NewRunScreen #form-buttons Button { margin-left: 1; }
    """

    BINDINGS = [
        Binding("ctrl+s", "submit", "Start run"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, base=None, note: str = "") -> None:
        super().__init__()
        self.base = base
        self.note = note
        self.result_config = None
        self.error: str | None = None
        self.tokenizer_choices: list[tuple[str, str]] = []  # as the menu shows them now

    def compose(self) -> ComposeResult:
        base = self.base
        with Vertical(id="form") as form:
            form.border_title = "New training run"
            form.border_subtitle = f"{key_display('enter')}/{binding_hint(self.BINDINGS)}"  # Enter in a field
            with VerticalScroll(id="fields"):
                if self.note:
                    yield Static(self.note, id="form-note")
                with Grid():
                    preset = getattr(base, "preset", None) or BY_NAME["preset"].default
                    yield Label("preset")
                    yield Select(
                        [(name, name) for name in PRESETS],
                        value=preset,
                        allow_blank=False,
                        compact=True,
                        id="f-preset",
                    )
                    yield Label("tokenizer")
                    self.tokenizer_choices = tokenizer_choices(preset, getattr(base, "init_from", None))
                    yield Select(
                        self.tokenizer_choices,
                        value=getattr(base, "tokenizer", None) or DEFAULT_TOKENIZER,
                        allow_blank=False,
                        compact=True,
                        id="f-tokenizer",
                    )
                    for name, label, _hint in FIELDS:  # the placeholders: show_defaults, once mounted
                        yield Label(label)
                        value = "" if name in ("run_name", "out") else _text(getattr(base, name, None))
                        yield Input(value=value, compact=True, id=f"f-{name}")
            yield Static("", id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Start run", id="start", variant="success", compact=True)

    def on_mount(self) -> None:
        self.query_one("#f-data", Input).focus()
        self.validate_form()

    # ------------------------------------------------------------ building
    def build_config(self):
        """Return a ``TrainConfig`` for the form, or raise ``GPTMiniError``."""
        raw = {name: self.query_one(f"#f-{name}", Input).value.strip() for name, _l, _h in FIELDS}
        raw["data"] = [p.strip() for p in raw["data"].split(",") if p.strip()]
        changes = {name: read_option(name, value) if value else BY_NAME[name].default for name, value in raw.items()}
        changes["preset"] = self.query_one("#f-preset", Select).value
        tok = self.query_one("#f-tokenizer", Select).value
        changes["tokenizer"] = None if tok == DEFAULT_TOKENIZER else tok
        # A new run never resumes the old one or writes into its folder.
        changes["resume"] = None
        config = replace(self.base, **changes) if self.base is not None else TrainConfig(**changes)
        check_run_paths(config)  # data that exists, an output folder that can be written
        return config

    def show_defaults(self) -> None:
        """Say in each blank field, and in the tokenizer menu, what the preset chosen now would use."""
        preset = self.query_one("#f-preset", Select).value
        typed = self.query_one("#f-d_model", Input).value.strip()
        try:
            d_model = read_option("d_model", typed) if typed else None
        except ConfigError:  # not a number (the error line says so): the preset's width meanwhile
            d_model = None
        for name, _label, hint in FIELDS:
            self.query_one(f"#f-{name}", Input).placeholder = placeholder(name, hint, preset, d_model)
        choices = tokenizer_choices(preset, getattr(self.base, "init_from", None))
        if choices != self.tokenizer_choices:  # set_options resets the choice: only when the words change
            self.tokenizer_choices = choices
            menu = self.query_one("#f-tokenizer", Select)
            chosen = menu.value
            menu.set_options(choices)
            menu.value = chosen

    def validate_form(self) -> bool:
        self.show_defaults()
        err = self.query_one("#form-error", Static)
        try:
            self.result_config = self.build_config()
        except (GPTMiniError, ValueError, TypeError) as exc:
            self.result_config = None
            self.error = str(exc)
            err.remove_class("-ok")
            err.update(f"✖ {exc}")
            return False
        self.error = None
        err.add_class("-ok")
        err.update("✓ ready to start")
        return True

    # ------------------------------------------------------------ events
    def on_input_changed(self, event: Input.Changed) -> None:
        self.validate_form()

    def on_select_changed(self, event: Select.Changed) -> None:
        if self.is_mounted:
            self.validate_form()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "start":
            self.action_submit()
        else:
            self.action_cancel()

    def action_submit(self) -> None:
        if self.validate_form():
            self.dismiss(self.result_config)
        else:
            self.app.bell()

    def action_cancel(self) -> None:
        self.dismiss(None)

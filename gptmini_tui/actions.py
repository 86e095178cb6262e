"""The console's actions: one table, the single source for key bindings, the footer, the help screen,
the command palette, which keys are inert while typing, and when an action is available.

An action is a row here and an ``action_<name>`` method on ``MainScreen``; nothing else lists it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from gptmini.events import RunState
from gptmini.sample.strategies import KNOBS, STRATEGIES, TEMPERATURE, word_list


class Needs(Enum):
    """When an action can be used (``MainScreen.check_action`` asks the session)."""

    NOTHING = "nothing"
    TRAINER = "trainer"  # a trainer in this process, loading or in its loop (not attach mode)
    ACTIVE = "active"  # a trainer in its loop: running or paused
    OWN_RUN = "own run"  # not attach mode
    TYPING = "typing"  # only while the prompt has focus


SECTIONS = ("Training", "Playground", "View", "App")
ATTACHED_REASON = "attached: controls belong to the training process"

# Key names that type a character into the prompt; actions on them are inert while it has focus.
_TYPED_KEY_NAMES = {
    "space", "question_mark", "slash", "minus", "plus", "equals_sign", "left_square_bracket", "right_square_bracket",
    "less_than_sign", "greater_than_sign",
}


@dataclass(frozen=True)
class Action:
    action: str  # Textual action string: "save", "strategy('top-k')"
    keys: str  # Textual key names, comma separated
    label: str  # footer text
    description: str  # help screen text
    section: str
    command: str | None = None  # command palette title; None: not in the palette
    display: str | None = None  # how the footer shows the key (the help lists every key)
    group: str | None = None  # footer group shown compactly under one label
    footer: bool = True
    needs: Needs = Needs.NOTHING

    @property
    def name(self) -> str:
        """The action's method name (``action_<name>``), without parameters."""
        return self.action.split("(")[0]

    @property
    def typed(self) -> bool:
        """Its key types a character: inert while the prompt has focus, so typing never triggers it."""
        return any(len(k) == 1 or k in _TYPED_KEY_NAMES for k in self.keys.split(","))

    @property
    def key_text(self) -> str:
        """Every key of the action, as the help screen lists them."""
        return ", ".join(_KEY_TEXT.get(k, k) for k in self.keys.split(","))


# The strategies' knobs as the keys' labels name them: "k, p or T" (temperature last: it has keys of its own).
_SYMBOLS = list(dict.fromkeys(k.symbol for k in KNOBS if k is not TEMPERATURE))
_KNOBS = word_list([*_SYMBOLS, TEMPERATURE.symbol])
_KNOB_SYMBOLS = " / ".join([*_SYMBOLS, TEMPERATURE.symbol])
_KNOB_GROUP = "/".join(_SYMBOLS)

_KEY_TEXT = {"question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]", "minus": "-",
             "plus": "+", "equals_sign": "=", "slash": "/", "less_than_sign": "<", "greater_than_sign": ">"}

# Footer order: the most used first (the footer clips what does not fit; ? lists everything).
ACTIONS: tuple[Action, ...] = (
    Action("help", "question_mark", "Help", "this help", "App", "Show keys"),
    Action("toggle_pause", "space", "Pause", "pause / resume training (--paused starts paused)", "Training",
           "Pause / resume training", needs=Needs.TRAINER),
    Action("save", "s", "Save", "save a checkpoint now", "Training", "Save checkpoint", needs=Needs.ACTIVE),
    Action("restore", "r", "Restore", "restore the highlighted checkpoint (asks first)", "Training",
           "Restore checkpoint", needs=Needs.ACTIVE),
    Action("new_run", "n", "New", "new run: data, preset, tokenizer, epochs, batch, lr", "Training", "New run",
           needs=Needs.OWN_RUN),
    Action("compare", "c", "Compare", "run the prompt through every strategy, one under another", "Playground",
           "Compare strategies"),
    Action("stop_generation", "x", "Stop", "stop generating", "Playground", "Stop generation"),
    *(Action(f"strategy({s.name!r})", s.key, s.name, s.help, "Playground", f"Strategy: {s.name}", group="strategy")
      for s in STRATEGIES.values()),
    Action("temperature(-1)", "left_square_bracket", "temperature down", "temperature down", "Playground",
           "Temperature down", group="T"),
    Action("temperature(1)", "right_square_bracket", "temperature up", "temperature up", "Playground",
           "Temperature up", group="T"),
    Action("param(-1)", "minus", f"knob down ({_KNOBS})", f"the strategy's knob down ({_KNOBS})", "Playground",
           f"Strategy knob down ({_KNOB_SYMBOLS})", group=_KNOB_GROUP),
    Action("param(1)", "plus,equals_sign", f"knob up ({_KNOBS})", f"the strategy's knob up ({_KNOBS})", "Playground",
           f"Strategy knob up ({_KNOB_SYMBOLS})", display="+", group=_KNOB_GROUP),
    Action("quit", "q", "Quit", "quit (saves unsaved progress first)", "App"),
    Action("cycle_axis", "a", "Axis", "loss plot x-axis: steps / tokens / epochs / wall time", "View",
           "Toggle loss x-axis"),
    Action("toggle_log_y", "l", "Log y", "loss plot: log-scale y axis on / off", "View", "Toggle log-scale y axis"),
    Action("zoom", "z", "Zoom", "loss plot: the last 100k / 10k / 1k / 100 steps, then the whole run", "View",
           "Zoom the loss plot"),
    Action("smoothing(-1)", "less_than_sign", "smoothing down", "loss plot: less smoothing (down to the engine's "
           "average)", "View", "Less smoothing", group="smooth"),
    Action("smoothing(1)", "greater_than_sign", "smoothing up", "loss plot: smooth over more steps (10, 50, 200, "
           "1000)", "View", "More smoothing", group="smooth"),
    Action("toggle_run", "o", "Overlay", "show / hide the highlighted run of the Runs panel on the loss plot", "View",
           "Overlay the highlighted run"),
    Action("save_plot", "e", "Export", "save the loss plot (SVG) and this run's metrics (CSV)", "View",
           "Save the loss plot and metrics"),
    Action("next_panel", "v", "Panel", "next panel: playground / checkpoints / runs / samples / log", "View",
           "Next panel"),
    Action("focus_prompt", "i,slash", "Prompt", "type a prompt (Enter generates)", "Playground", "Focus prompt",
           display="i"),
    Action("refresh_probs", "d", "Probs", "recompute the next-token probabilities now", "Playground",
           "Refresh next-token probabilities"),
    Action("submit_prompt", "enter", "Generate", "generate from the prompt (in the prompt)", "Playground",
           needs=Needs.TYPING),
    Action("leave_prompt", "escape", "Leave prompt", "leave the prompt (letter keys act again)", "Playground",
           needs=Needs.TYPING),
    Action("stop_or_hint", "ctrl+c", "Stop generation", "stop generating", "Playground", footer=False),
)

# Keys that are not actions of the main screen, for the help screen.
MORE_KEYS: tuple[tuple[str, str, str], ...] = (
    ("View", "tab / shift+tab", "move focus between panels"),
    ("App", "ctrl+p", "command palette (every action by name)"),
    ("App", "ctrl+q", "quit (as q, also while typing)"),
)

BY_NAME: dict[str, Action] = {}
for _a in ACTIONS:
    BY_NAME.setdefault(_a.name, _a)


def bindings() -> list[Binding]:
    groups = {name: Binding.Group(name, compact=True) for name in {a.group for a in ACTIONS if a.group}}
    return [Binding(a.keys, a.action, a.label, show=a.footer, key_display=a.display,
                    group=groups[a.group] if a.group else None) for a in ACTIONS]


def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
    rows: dict[str, list[tuple[str, str]]] = {s: [] for s in SECTIONS}
    for a in ACTIONS:
        rows[a.section].append((a.key_text, a.description))
    for section, keys, text in MORE_KEYS:
        rows[section].append((keys, text))
    return [(s, r) for s, r in rows.items() if r]


def availability(action: Action, *, typing: bool, attached: bool, state: RunState, loop_active: bool) -> bool | None:
    """True: can run now; None: shown dimmed (the reason is on screen); False: hidden."""
    needs = action.needs
    if needs is Needs.TYPING:
        return typing
    if needs is Needs.NOTHING:
        return True
    if attached:
        return False  # not in the footer: they belong to the training process (a key says so)
    if needs is Needs.TRAINER:
        return True if state in (RunState.CREATED, RunState.STARTING, RunState.RUNNING, RunState.PAUSED) else None
    if needs is Needs.ACTIVE:
        return True if loop_active else None
    return True  # Needs.OWN_RUN


def why_unavailable(action: Action, *, attached: bool, state: RunState) -> str:
    """What a key whose action cannot run now says instead."""
    if attached:
        return f"{action.label}: {ATTACHED_REASON}; this console only follows the run"
    if state in (RunState.CREATED, RunState.STARTING):
        return f"{action.label}: the model is still loading"
    if state.ended:
        return f"{action.label}: the run has ended · n starts a new one"
    return f"{action.label}: not while the run is stopping"


class ActionCommands(Provider):
    """The command palette's commands: every action with a title that can run now."""

    def _available(self) -> Iterable[Action]:
        screen = self.screen
        for a in ACTIONS:
            if a.command and screen.check_action(a.name, ()):
                yield a

    async def discover(self) -> Hits:
        for a in self._available():
            yield DiscoveryHit(a.command, self._runner(a), help=f"{a.key_text}: {a.description}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for a in self._available():
            score = matcher.match(a.command)
            if score > 0:
                yield Hit(score, matcher.highlight(a.command), self._runner(a), help=f"{a.key_text}: {a.description}")

    def _runner(self, a: Action):
        screen = self.screen
        return lambda: screen.run_action(a.action)

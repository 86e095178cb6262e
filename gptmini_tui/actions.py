"""The console's actions: one table, the single source for key bindings, the footer, the help screen,
the command palette, the keys that hints name, which keys are inert while typing, and when an action
is available.

An action is a row here and an ``action_<name>`` method on ``MainScreen``; nothing else lists it. A
text that names a key asks this module for it (``key("new_run")`` -> ``"n"``): no key is written
anywhere else in the console.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from gptmini.events import RunState
from gptmini.sample.strategies import KNOBS, STRATEGIES, TEMPERATURE, key_span, word_list


class Needs(Enum):
    """When an action can be used (``MainScreen.check_action`` asks the session)."""

    NOTHING = "nothing"
    TRAINER = "trainer"  # a trainer in this process, loading or in its loop (not attach mode)
    ACTIVE = "active"  # a trainer in its loop: running or paused
    OWN_RUN = "own run"  # not attach mode
    TYPING = "typing"  # only while the prompt has focus


class InFooter(Enum):
    """Whether the footer shows an action (only while it is available; dimmed while it waits)."""

    PINNED = "pinned"  # always, whatever the width
    IF_ROOM = "if room"  # when it fits, in table order
    NO = "no"


SECTIONS = ("Training", "Playground", "View", "App")
GENERATES = ("pretrain", "instruct")  # the tasks whose model writes text (a classifier has no sampling strategies)
TASK_WORDS = {"pretrain": "pre-training", "instruct": "instruction", "classify": "classification"}
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
    footer: InFooter = InFooter.IF_ROOM
    needs: Needs = Needs.NOTHING
    tasks: tuple[str, ...] = ()  # the run's tasks it belongs to (``RunStarted.task``); (): every task

    @property
    def name(self) -> str:
        """The action's method name (``action_<name>``), without parameters."""
        return self.action.split("(")[0]

    @property
    def typed(self) -> bool:
        """Its key types a character: inert while the prompt has focus, so typing never triggers it."""
        return any(len(k) == 1 or k in _TYPED_KEY_NAMES for k in self.keys.split(","))

    @property
    def follows_run(self) -> bool:
        """Its availability follows the run's state or task (the footer is refreshed when they change)."""
        return self.needs in (Needs.TRAINER, Needs.ACTIVE, Needs.OWN_RUN) or bool(self.tasks)

    @property
    def key_text(self) -> str:
        """Every key of the action, as the help screen lists them."""
        return ", ".join(key_display(k) for k in self.keys.split(","))

    @property
    def key_name(self) -> str:
        """The key the footer and the hints name."""
        return self.display or key_display(self.keys.split(",")[0])


# The strategies' knobs as the keys' labels name them: "k, p or T" (temperature last: it has keys of its own).
_SYMBOLS = list(dict.fromkeys(k.symbol for k in KNOBS if k is not TEMPERATURE))
_KNOBS = word_list([*_SYMBOLS, TEMPERATURE.symbol])
_KNOB_SYMBOLS = " / ".join([*_SYMBOLS, TEMPERATURE.symbol])
_KNOB_GROUP = "/".join(_SYMBOLS)

_KEY_TEXT = {"question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]", "minus": "-",
             "plus": "+", "equals_sign": "=", "slash": "/", "less_than_sign": "<", "greater_than_sign": ">",
             "escape": "Esc", "enter": "Enter"}


def key_display(key_name: str) -> str:
    """A Textual key name as the console writes it: ``"question_mark"`` -> ``"?"``."""
    return _KEY_TEXT.get(key_name, key_name)

# Footer order: the most used first (the footer shows the pinned ones and then, in this order, what fits;
# ? lists everything).
ACTIONS: tuple[Action, ...] = (
    Action("help", "question_mark", "Help", "this help", "App", "Show keys", footer=InFooter.PINNED),
    Action("toggle_pause", "space", "Pause", "pause / resume training (--paused starts paused)", "Training",
           "Pause / resume training", footer=InFooter.PINNED, needs=Needs.TRAINER),
    Action("save", "s", "Save", "save a checkpoint now", "Training", "Save checkpoint", needs=Needs.ACTIVE),
    Action("restore", "r", "Restore", "restore the highlighted checkpoint (asks first)", "Training",
           "Restore checkpoint", needs=Needs.ACTIVE),
    Action("new_run", "n", "New", "new run: data, preset, tokenizer, epochs, batch, lr", "Training", "New run",
           needs=Needs.OWN_RUN),
    Action("compare", "c", "Compare", "run the prompt through every strategy, one under another", "Playground",
           "Compare strategies", tasks=GENERATES),
    Action("toggle_formatted", "f", "Formatted", "show / hide the formatted prompt (the instruction in the run's "
           "template, as the model reads it)", "Playground", "Show the formatted prompt", tasks=("instruct",)),
    Action("stop_generation", "x", "Stop", "stop generating", "Playground", "Stop generation", tasks=GENERATES),
    *(Action(f"strategy({s.name!r})", s.key, s.name, s.help, "Playground", f"Strategy: {s.name}", group="strategy",
             tasks=GENERATES)
      for s in STRATEGIES.values()),
    Action("temperature(-1)", "left_square_bracket", "temperature down", "temperature down", "Playground",
           "Temperature down", group="T", tasks=GENERATES),
    Action("temperature(1)", "right_square_bracket", "temperature up", "temperature up", "Playground",
           "Temperature up", group="T", tasks=GENERATES),
    Action("param(-1)", "minus", f"knob down ({_KNOBS})", f"the strategy's knob down ({_KNOBS})", "Playground",
           f"Strategy knob down ({_KNOB_SYMBOLS})", group=_KNOB_GROUP, tasks=GENERATES),
    Action("param(1)", "plus,equals_sign", f"knob up ({_KNOBS})", f"the strategy's knob up ({_KNOBS})", "Playground",
           f"Strategy knob up ({_KNOB_SYMBOLS})", display="+", group=_KNOB_GROUP, tasks=GENERATES),
    Action("quit", "q", "Quit", "quit (saves unsaved progress first)", "App", footer=InFooter.PINNED),
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
    Action("stop_or_hint", "ctrl+c", "Stop generation", "stop generating", "Playground", footer=InFooter.NO),
)

BY_NAME: dict[str, Action] = {}
for _a in ACTIONS:
    BY_NAME.setdefault(_a.name, _a)

PALETTE_KEY = "ctrl+p"  # the app's command palette (GPTMiniApp.COMMAND_PALETTE_BINDING)
QUIT_ANYWHERE = "ctrl+q"  # the app's quit, also while typing

# Keys that are not actions of the main screen, for the help screen.
MORE_KEYS: tuple[tuple[str, str, str], ...] = (
    ("View", "tab / shift+tab", "move focus between panels"),
    ("App", PALETTE_KEY, "command palette (every action by name)"),
    ("App", QUIT_ANYWHERE, f"quit (as {BY_NAME['quit'].key_name}, also while typing)"),
)

_GROUP_KEYS = {"strategy": key_span(list(STRATEGIES.values()))}  # "1-5"; other groups list their keys


def key(name: str) -> str:
    """The key that a hint names for the action ``name``: ``key("new_run")`` -> ``"n"``."""
    return BY_NAME[name].key_name


def keys(name: str) -> str:
    """Every key of the action ``name`` in words: ``keys("focus_prompt")`` -> ``"i or /"``."""
    return word_list([key_display(k) for k in BY_NAME[name].keys.split(",")])


RUN_ENDED = f"the run has ended · {key('new_run')} starts a new one"


def binding_hint(bindings: list[Binding]) -> str:
    """A modal screen's own keys, for its border: ``"ctrl+s start run · Esc cancel"``."""
    return " · ".join(f"{'/'.join(key_display(k) for k in b.key.split(','))} {b.description.lower()}" for b in bindings)


def bindings() -> list[Binding]:
    groups = {name: Binding.Group(name, compact=True) for name in {a.group for a in ACTIONS if a.group}}
    return [Binding(a.keys, a.action, a.label, show=a.footer is not InFooter.NO, key_display=a.display,
                    group=groups[a.group] if a.group else None) for a in ACTIONS]


def app_bindings() -> list[Binding]:
    """The app's own keys (they act on every screen)."""
    return [Binding(QUIT_ANYWHERE, "quit", BY_NAME["quit"].label, show=False, priority=True)]


@dataclass(frozen=True)
class FooterEntry:
    """One entry of the footer: an action, or a group of them under one label."""

    key_texts: tuple[str, ...]  # shown before the label: ("space",), ("[", "]"), ("1-5",)
    keys: tuple[str, ...]  # the key each key text stands for (a click presses it); () for a span ("1-5")
    label: str
    pinned: bool
    enabled: bool  # False: shown dimmed (its action waits for the run)

    @property
    def text(self) -> str:
        return f"{' '.join(self.key_texts)} {self.label}"


PALETTE_ENTRY = FooterEntry(("^" + PALETTE_KEY.removeprefix("ctrl+"),), (PALETTE_KEY,), "palette", True, True)


def footer_entries(available: Callable[[Action], bool | None]) -> list[FooterEntry]:
    """The footer's entries in table order: the actions shown in it, those of a group as one entry,
    each with its availability now (``available``: True, None dimmed, False left out)."""
    entries: list[FooterEntry] = []
    for a in ACTIONS:
        members = [m for m in ACTIONS if m.group == a.group] if a.group else [a]
        if a.footer is InFooter.NO or members[0] is not a:  # a group is one entry, where its first member is
            continue
        states = [available(m) for m in members]
        if all(state is False for state in states):
            continue
        if a.group in _GROUP_KEYS:
            texts, pressed = (_GROUP_KEYS[a.group],), ()
        else:
            texts, pressed = tuple(m.key_name for m in members), tuple(m.keys.split(",")[0] for m in members)
        entries.append(FooterEntry(texts, pressed, a.group or a.label, a.footer is InFooter.PINNED,
                                   any(state is True for state in states)))
    return entries


def refresh_signature(available: Callable[[Action], bool | None]) -> tuple:
    """The availability of the actions that follow the run's state: the footer needs refreshing when it
    changes (and only then: a refresh of the bindings costs a key press's worth of latency)."""
    return tuple(available(a) for a in ACTIONS if a.follows_run)


def help_sections(task: str = "pretrain") -> list[tuple[str, list[tuple[str, str]]]]:
    """The help screen's rows by section: every action of a run of ``task``, and the keys beyond the table."""
    rows: dict[str, list[tuple[str, str]]] = {s: [] for s in SECTIONS}
    for a in ACTIONS:
        if not a.tasks or task in a.tasks:
            rows[a.section].append((a.key_text, a.description))
    for section, key_names, text in MORE_KEYS:
        rows[section].append((key_names, text))
    return [(s, r) for s, r in rows.items() if r]


def availability(action: Action, *, typing: bool, attached: bool, state: RunState, loop_active: bool,
                 task: str = "pretrain") -> bool | None:
    """True: can run now; None: shown dimmed (the reason is on screen); False: hidden (also an action of
    another task than the run's)."""
    if action.tasks and task not in action.tasks:
        return False
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


def why_unavailable(action: Action, *, attached: bool, state: RunState, task: str = "pretrain") -> str:
    """What a key whose action cannot run now says instead."""
    if action.tasks and task not in action.tasks:
        runs = word_list([TASK_WORDS.get(t, t) for t in action.tasks])
        return f"{action.label}: only in {runs} runs (this one is {TASK_WORDS.get(task, task)})"
    if attached:
        return f"{action.label}: {ATTACHED_REASON}; this console only follows the run"
    if state in (RunState.CREATED, RunState.STARTING):
        return f"{action.label}: the model is still loading"
    if state.ended:
        return f"{action.label}: {RUN_ENDED}"
    return f"{action.label}: not while the run is stopping"


def unavailable_key(key_name: str, check: Callable[[str], bool | None]) -> Action | None:
    """The action of the key ``key_name`` when it cannot run now (``check(action name)``), else None."""
    return next((a for a in ACTIONS if key_name in a.keys.split(",") and not check(a.name)), None)


def help_note(attached: bool) -> str:
    """The line under the help screen's keys."""
    if attached:
        return ATTACHED_REASON + "; the playground samples the newest checkpoint."
    return (f"{key('leave_prompt')} leaves the prompt so letter keys act again. "
            f"{PALETTE_KEY} opens the command palette.")


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

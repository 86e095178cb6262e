"""Keys are named in one place: every text of the console that names a key of the main screen asks the
action table (``gptmini_tui/actions.py``) for it, so a key changed there changes every hint.

The scan reads every string the console's modules write (docstrings and CSS aside) and fails on a word
that is one of the table's keys; ``a`` and ``/`` are left out (the axis key is also an English word, and
the prompt's second key a separator).
"""

from __future__ import annotations

import ast
from pathlib import Path

import gptmini_tui
from gptmini.sample.strategies import STRATEGIES, key_span
from gptmini_tui import actions
from gptmini_tui.screens.help import HelpScreen
from gptmini_tui.widgets.playground import transcript_hint

CONSOLE = Path(gptmini_tui.__file__).parent
NOT_KEYS = {"a", "/"}


def key_words() -> set[str]:
    words = {actions.PALETTE_KEY, actions.QUIT_ANYWHERE, actions.PALETTE_ENTRY.key_texts[0], "esc"}
    for a in actions.ACTIONS:
        for k in a.keys.split(","):
            words |= {k, actions.key_display(k)}
        if a.display:
            words.add(a.display)
    return {w.lower() for w in words} - NOT_KEYS


PLACEHOLDER = "\x00"  # where an f-string puts a value: "d{n}" is no word "d"


def _prose(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of each string with a space in it, docstrings and CSS left out (an f-string whole)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            skip.add(id(first.value))  # a docstring
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "").endswith("CSS") for t in node.targets):
            skip.add(id(node.value))
        if isinstance(node, ast.JoinedStr):
            skip |= {id(part) for part in node.values}
    texts = []
    for n in ast.walk(tree):
        if isinstance(n, ast.JoinedStr) and id(n) not in skip:
            texts.append((n, "".join(p.value if isinstance(p, ast.Constant) else PLACEHOLDER for p in n.values)))
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip:
            texts.append((n, n.value))
    return [(n.lineno, text) for n, text in sorted(texts, key=lambda t: (t[0].lineno, t[0].col_offset)) if " " in text]


def hand_written_keys(source: str) -> list[tuple[int, str, str]]:
    """(line, key, text) of each key word in the prose of a module's source."""
    words = key_words()
    found = []
    for line, text in _prose(ast.parse(source)):
        for token in text.split():
            word = token.strip(".,;()'\"…·—!?").lower() if len(token) > 1 else token.lower()
            if word in words:
                found.append((line, word, text))
    return found


def test_no_module_of_the_console_writes_a_key_by_hand():
    found = {str(p.relative_to(CONSOLE)): hand_written_keys(p.read_text(encoding="utf-8"))
             for p in sorted(CONSOLE.rglob("*.py")) if p.name != "actions.py"}
    assert {path: keys for path, keys in found.items() if keys} == {}


def test_the_scan_finds_the_hand_written_keys_this_repo_had():
    """What the scan is for: the hints as they stood before the table gave them their keys."""
    before = '''
def transcript_hint() -> str:
    """A docstring may say i or / freely."""
    return ("Type a prompt below (i or / to focus it, Enter to generate). "
            f"{span} pick {names}, c compares them all, x stops.")
NOTE = "Esc leaves the prompt so letter keys act again. Ctrl+P opens the command palette."
DETAIL = "press space to resume"
SAVE = Button("Save  s", id="save-btn")
QUIT = f"press q (or ctrl+q) to quit"
'''
    words = [word for _line, word, _text in hand_written_keys(before)]
    assert words == ["i", "enter", "c", "x", "esc", "ctrl+p", "space", "s", "q", "ctrl+q"]


def test_the_playground_hint_names_the_tables_keys():
    hint = transcript_hint()
    assert hint == (f"Type a prompt below ({actions.keys('focus_prompt')} to focus it, {actions.key('submit_prompt')} "
                    f"to generate). {key_span(list(STRATEGIES.values()))} pick {' / '.join(STRATEGIES)}, "
                    f"{actions.key('compare')} compares them all, {actions.key('stop_generation')} stops.")
    assert hint.startswith("Type a prompt below (i or / to focus it, Enter to generate). 1-")
    assert actions.BY_NAME["focus_prompt"].keys == "i,slash" and actions.BY_NAME["compare"].keys == "c"


def test_hints_and_help_follow_a_key_changed_in_the_table(monkeypatch):
    """Rebinding an action in the table is the whole change: the hints, the help and the footer follow."""
    moved = actions.Action("compare", "k", "Compare", "run the prompt through every strategy", "Playground")
    monkeypatch.setitem(actions.BY_NAME, "compare", moved)
    monkeypatch.setattr(actions, "ACTIONS", tuple(moved if a.name == "compare" else a for a in actions.ACTIONS))
    assert "k compares them all" in transcript_hint() and "c compares" not in transcript_hint()
    rows = dict(row for _section, rows in actions.help_sections() for row in rows)
    assert rows["k"] == "run the prompt through every strategy" and "c" not in rows
    assert "k Compare" in [e.text for e in actions.footer_entries(lambda a: True)]


def test_modal_screens_name_their_own_bindings():
    assert actions.binding_hint(HelpScreen.BINDINGS) == "Esc/q/?/f1 close"

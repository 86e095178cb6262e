"""Where a long text may be cut into pieces that GPT-2 encodes one by one.

``safe_cut`` finds a point that does not change GPT-2's pre-tokenisation, so the pieces' tokens, joined,
equal the whole text's. ``forced_cut`` is for a piece with no such point: one "word" of a million
characters (a corpus without whitespace, punctuation or digits), which would otherwise be encoded in one
call, with no progress and no way to stop; cut there, the tokens may differ from ``encode()`` near the cut.
"""

from __future__ import annotations

import unicodedata

EOT_TEXT = "<|endoftext|>"
MAX_CANDIDATES = 4096  # split points tried per rule and call: cheap even when none is safe


def safe_cut(text: str, limit: int) -> int:
    """Split point in ``text[:limit]`` that does not change GPT-2 pre-tokenisation, or 0 if none.

    Safe: right after a lone ``"\\n"`` with non-whitespace on both sides (GPT-2's regex then always yields
    ``"\\n"`` as its own token); before a space between two ASCII letters (``"a b"`` is always ``"a"``,
    ``" b"``); or between two characters of different classes among letters, digits and other non-space
    characters, neither an apostrophe (``"abc123"`` is always ``"abc"``, ``"123"``: the regex's runs are
    possessive and have no look-behind). Never inside ``<|endoftext|>``. Only the second half of the window
    is searched, so this stays cheap.
    """
    lo = max(1, limit // 2)
    for sep, shift, ok in (("\n", 1, _non_space), (" ", 0, _ascii_letter)):
        j = text.rfind(sep, lo, limit)
        for _ in range(MAX_CANDIDATES):
            if j < lo:
                break
            if j + 1 < len(text) and ok(text[j - 1]) and ok(text[j + 1]):
                return j + shift
            j = text.rfind(sep, lo, j)
    for i in range(min(limit, len(text) - 1), max(lo, limit - MAX_CANDIDATES) - 1, -1):
        before, after = _run_class(text[i - 1]), _run_class(text[i])
        if before and after and before != after and not _inside_special(text, i):
            return i
    return 0


def forced_cut(text: str, limit: int) -> int:
    """A cut at or just before ``limit`` for a piece that has no safe one: between two non-space characters
    where possible, never inside ``<|endoftext|>``."""
    limit = min(limit, len(text) - 1)
    for i in range(limit, max(1, limit - MAX_CANDIDATES) - 1, -1):
        if _run_class(text[i - 1]) and _run_class(text[i]) and not _inside_special(text, i):
            return i
    while limit > 1 and _inside_special(text, limit):
        limit -= 1
    return max(1, limit)


def _run_class(c: str) -> str | None:
    """``"L"``, ``"N"`` or ``"P"``: the GPT-2 regex run a character belongs to (letters, digits, anything
    else that is not whitespace); None where no cut may touch it (whitespace, the apostrophe of ``'s``, a
    character this Python's Unicode tables do not know, which the tokenizer's may)."""
    if c.isspace() or c == "'":
        return None
    cat = unicodedata.category(c)
    if cat == "Cn":
        return None
    return cat[0] if cat[0] in "LN" else "P"


def _inside_special(text: str, i: int) -> bool:
    """``<|endoftext|>`` spans ``i``, or may: its start is before ``i`` and the text ends before it does."""
    n = len(EOT_TEXT)
    j = text.find("<", max(0, i - n + 1), i)
    while j != -1:
        tail = text[j : j + n]
        if tail == EOT_TEXT or (len(tail) < n and EOT_TEXT.startswith(tail)):
            return True
        j = text.find("<", j + 1, i)
    return False


def _non_space(c: str) -> bool:
    return not c.isspace()  # Python's isspace() covers every character regex \s matches


def _ascii_letter(c: str) -> bool:
    return c.isascii() and c.isalpha()

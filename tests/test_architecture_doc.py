"""docs/ARCHITECTURE.md keeps up with the code: it names every module of both packages, and the console
reaches a run only through ``RunSession``, as the document says.

A module is named by its path inside its package, in backticks, in that package's section of the
document (``## Modules of `gptmini/` ``): ``tasks/instruct.py``, ``widgets/footer.py``, ``__init__.py``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "ARCHITECTURE.md"
PACKAGES = ("gptmini", "gptmini_tui")

# What the console must not import: the run is reached through gptmini.session (RunSession) only.
# train/omp.py is the per-thread OpenMP limit the playground's sampling threads take.
CONSOLE_FORBIDDEN = ("gptmini.train", "gptmini.tasks", "gptmini.model", "gptmini.data", "gptmini.ckpt",
                     "gptmini.interop", "gptmini.metrics")
CONSOLE_ALLOWED = ("gptmini.train.omp",)


def package_section(package: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    heading = f"## Modules of `{package}/`"
    assert heading in text, f"{DOC} has no section {heading!r}"
    start = text.index(heading) + len(heading)
    end = text.find("\n## ", start)
    return text[start:] if end == -1 else text[start:end]


def modules_of(package: str) -> list[str]:
    root = REPO / package
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_architecture_doc_names_every_module(package):
    named = set(re.findall(r"`([^`\s]+\.py)`", package_section(package)))
    missing = [m for m in modules_of(package) if m not in named]
    assert modules_of(package), f"no modules found under {REPO / package}"
    assert not missing, (f"docs/ARCHITECTURE.md, section 'Modules of {package}/', does not name "
                         f"{', '.join(missing)}: add a row with its one concern")


def imported_names(path: Path) -> set[str]:
    """Every absolute module a file imports (``from gptmini import fmt`` -> ``gptmini.fmt``), at any depth."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_console_reaches_a_run_only_through_the_session():
    root = REPO / "gptmini_tui"
    reached = {
        f"gptmini_tui/{rel}: {name}"
        for rel in modules_of("gptmini_tui")
        for name in imported_names(root / rel)
        if _under(name, CONSOLE_FORBIDDEN) and not _under(name, CONSOLE_ALLOWED)
    }
    assert not reached, ("the console imports library modules that docs/ARCHITECTURE.md says it reaches only "
                         "through RunSession:\n" + "\n".join(sorted(reached)))

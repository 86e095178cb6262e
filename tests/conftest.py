from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny test models run fastest, and steadiest on a busy 2-core box, on one intra-op thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Token and corpus caches go to a per-session temp dir, never the user's cache."""
    cache = tmp_path_factory.getbasetemp() / "gptmini-cache"
    monkeypatch.setenv("GPTMINI_CACHE_DIR", str(cache))
    yield


@pytest.fixture
def tiny_text(tmp_path) -> Path:
    """A small English text file (~6 KB) for tiny training runs."""
    words = ("the model reads every line of text and learns which letter comes next so that "
             "after a while it writes words that look like english ").split()
    lines = []
    for i in range(160):
        lines.append(" ".join(words[(i * 7 + j) % len(words)] for j in range(6)).capitalize() + ".")
    p = tmp_path / "tiny.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


def shared_file(name: str) -> Path:
    p = SHARED_DATA / name
    if not p.exists():
        pytest.skip(f"{p} is not present (optional shared data)")
    return p

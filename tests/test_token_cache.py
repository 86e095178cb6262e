"""The token cache: checked before every use, tokenised again when damaged, and honest when the disk is full;
tokenising a text GPT-2 cannot split still advances chunk by chunk."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gptmini.data import tokens as tokens_module
from gptmini.data.token_file import FOOTER
from gptmini.data.tokens import MAX_WORD_CHARS, TokenData
from gptmini.errors import CorpusError
from gptmini.text.corpus import Corpus
from gptmini.text.tokenizer import build_tokenizer
from tests.helpers import in_small_mount
from tests.test_cli import TINY, run


@pytest.fixture(scope="module")
def gpt2():
    return build_tokenizer("gpt2")


def _text(n: int = 400) -> str:
    return "\n".join(f"Line {i}: the quick brown fox jumps over the lazy dog." for i in range(n))


def cache_file(cache: Path) -> Path:
    (path,) = [p for p in (cache / "tokens").iterdir() if p.suffix == ".bin"]
    return path


@pytest.mark.parametrize("damage", ["truncated", "flipped", "grown", "empty"])
def test_a_damaged_cache_file_is_tokenised_again_with_a_warning(gpt2, tmp_path, damage):
    corpus = Corpus("t", _text())
    good = TokenData.build(corpus, gpt2, cache_dir=tmp_path)
    expected = np.array(good.tokens)
    raw = bytearray(good.path.read_bytes())
    del good
    if damage == "truncated":
        raw = raw[: len(raw) // 3]
    elif damage == "flipped":  # same size, one id changed
        raw[10] ^= 0xFF
    elif damage == "grown":
        raw += b"\x00\x01"
    else:
        raw = bytearray()
    path = next(tmp_path.iterdir())
    path.write_bytes(bytes(raw))
    warnings: list[str] = []
    again = TokenData.build(corpus, gpt2, cache_dir=tmp_path, warn=warnings.append)
    assert not again.from_cache and np.array_equal(np.array(again.tokens), expected)
    assert len(warnings) == 1 and "is damaged" in warnings[0] and str(path) in warnings[0]
    assert TokenData.build(corpus, gpt2, cache_dir=tmp_path, warn=warnings.append).from_cache  # sound again
    assert len(warnings) == 1 and path.stat().st_size == expected.nbytes + FOOTER.size


def test_a_truncated_cache_is_rebuilt_before_a_run_trains_on_it(tmp_path, monkeypatch):
    """Through the commands: a cut-short cache file (a full disk, a copy that stopped) never trains a run."""
    corpus = tmp_path / "c.txt"
    corpus.write_text(_text(1500))
    env_cache = tmp_path / "cache"
    monkeypatch.setenv("GPTMINI_CACHE_DIR", str(env_cache))
    first = run("prepare", "--data", str(corpus), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    n_tokens = int(first.stdout.split("-> ")[1].split(" ")[0].replace(",", ""))
    path = cache_file(env_cache)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 4)
    trained = run("train", "--data", str(corpus), *TINY, "--max-steps", "1", "--val-fraction", "0.1",
                  "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert f"warning: the token cache file {path} is damaged" in trained.stdout.replace("\n", "")
    started = next(json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
                   if json.loads(line)["event"] == "run_started")
    assert started["train_tokens"] + started["val_tokens"] == n_tokens


def test_a_text_gpt2_cannot_split_is_tokenised_chunk_by_chunk(gpt2, tmp_path):
    """One 'word' of a million letters (no whitespace, digits or punctuation): progress after every quarter
    million characters, not one call for the whole text."""
    word = "".join(np.random.default_rng(0).choice(list("abcdefghijklmnopqrstuvwxyz"), 4 * MAX_WORD_CHARS + 999))
    calls: list[tuple[int, int]] = []
    data = TokenData.build(Corpus("one-word", word), gpt2, cache_dir=tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert len(calls) >= len(word) // MAX_WORD_CHARS
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1] == (len(word), len(word))
    assert gpt2.decode(data.tokens) == word  # cut into pieces, nothing lost or added


def test_a_full_disk_names_the_cause_and_the_space(gpt2, tmp_path, monkeypatch):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    real_open = open
    monkeypatch.setattr(tokens_module, "open", lambda path, mode="r": real_open("/dev/full", mode), raising=False)
    monkeypatch.setenv("GPTMINI_CACHE_DIR", str(tmp_path))
    with pytest.raises(CorpusError) as info:
        TokenData.build(Corpus("t", _text()), gpt2, cache_dir=tmp_path / "tokens")
    message = str(info.value)
    assert "no space left on device" in message and "the tokens need up to" in message and "free there" in message
    assert f"point GPTMINI_CACHE_DIR (now {tmp_path}) at another folder" in message
    assert "requested and" not in message
    assert list((tmp_path / "tokens").iterdir()) == []  # no temporary file left


def test_prepare_on_a_full_disk_says_so_in_one_line(tmp_path):
    """A real full disk: a 64 KB filesystem mounted for the command alone (needs unshare and root)."""
    corpus = tmp_path / "c.txt"
    corpus.write_text(_text(4000))
    small = tmp_path / "mnt"
    out = in_small_mount(tmp_path, "size=64k", ["env", f"GPTMINI_CACHE_DIR={small}", sys.executable, "-m", "gptmini",
                                                "prepare", "--data", str(corpus)])
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: cannot write the token cache in {small / 'tokens'}: no space left on device")
    assert f"(now {small})" in lines[0]
    assert out.stdout.splitlines()[-1].strip() == "LEFT:tokens"  # an empty folder: no temporary file


PIECES = list("abcXYZ019'.,;!? \n\t-_<>|") + ["<|endoftext|>", "<|endof", "é", "\u0301", "一", "，", "。", "🐉",
                                                "\u00a0", "\x1c", "'s", "'ll", "٣", "\u0378", "\r\n", "  "]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(parts=st.lists(st.sampled_from(PIECES), max_size=300), chunk=st.integers(2, 40))
def test_gpt2_safe_cuts_never_change_the_tokens(gpt2, parts, chunk):
    """Cut between letters, digits and punctuation (a text without whitespace still has many safe points):
    the pieces' tokens are the whole text's."""
    text = "".join(parts)
    assert gpt2.encode_to_array(text, chunk_chars=chunk).tolist() == gpt2.encode(text)

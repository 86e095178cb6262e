"""Token cache, split, batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gptmini.data.tokens import TokenData, tokens_cache_dir
from gptmini.data.windows import Batches, check_fits, eval_batches
from gptmini.errors import ConfigError, CorpusError
from gptmini.text.corpus import Corpus, load_corpus
from gptmini.text.tokenizer import build_tokenizer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GPTMINI_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def gpt2():
    return build_tokenizer("gpt2")


def _text(n_lines: int = 400) -> str:
    return "\n".join(f"Line {i}: the quick brown fox jumps over the lazy dog." for i in range(n_lines))


# -- TokenData -----------------------------------------------------------------------


def test_build_caches_and_reuses(gpt2):
    corpus = Corpus("t", _text())
    calls = []
    first = TokenData.build(corpus, gpt2, progress=lambda d, t: calls.append((d, t)))
    assert first.path is not None and first.path.parent == tokens_cache_dir()
    assert not first.from_cache and isinstance(first.tokens, np.memmap)
    assert first.dtype == np.uint16
    assert first.tokens.tolist() == gpt2.encode(corpus.text)
    assert calls[-1] == (corpus.n_bytes, corpus.n_bytes)
    mtime = first.path.stat().st_mtime_ns

    second = TokenData.build(corpus, gpt2)
    assert second.from_cache and second.path == first.path
    assert second.path.stat().st_mtime_ns == mtime
    assert np.array_equal(second.tokens, first.tokens)
    assert [p.name for p in first.path.parent.iterdir()] == [first.path.name]  # no temp files left


def test_cache_key_depends_on_text_and_tokenizer(gpt2):
    a = TokenData.build(Corpus("a", _text()), gpt2)
    b = TokenData.build(Corpus("b", _text() + "!"), gpt2)
    c = TokenData.build(Corpus("a", _text()), build_tokenizer("char", _text()))
    assert len({a.path, b.path, c.path}) == 3
    assert c.dtype == np.uint16 and c.n_tokens == len(_text())


def test_documents_separated_by_eot_for_gpt2_and_blank_line_for_char(gpt2):
    corpus = Corpus("docs", documents=["first doc", "second doc"])
    tokens = TokenData.build(corpus, gpt2).tokens.tolist()
    assert tokens == gpt2.encode("first doc") + [50256] + gpt2.encode("second doc")
    char = build_tokenizer("char", corpus.text)
    assert char.decode(TokenData.build(corpus, char).tokens) == "first doc\n\nsecond doc"


def test_file_corpus_streams_in_blocks(gpt2, tmp_path):
    (tmp_path / "a.txt").write_text(_text(3000))
    (tmp_path / "b.txt").write_text("ünïcödé 🐉 text\n" * 500)
    corpus = load_corpus(str(tmp_path))
    data = TokenData.build(corpus, gpt2)
    expected = gpt2.encode(corpus.documents[0]) + [50256] + gpt2.encode(corpus.documents[1])
    assert data.tokens.tolist() == expected


def test_split_sizes():
    data = TokenData.from_tokens(np.arange(5145) % 100, val_fraction=0.1)
    assert (data.n_train, data.n_val, data.n_tokens) == (4630, 515, 5145)
    assert len(data.train) == 4630 and len(data.val) == 515
    assert data.val[0] == 4630 % 100
    assert TokenData.from_tokens(list(range(10)), val_fraction=0).n_val == 0
    with pytest.raises(ConfigError, match="val_fraction"):
        TokenData.from_tokens(list(range(10)), val_fraction=1.0)


def test_unwritable_cache_is_a_clear_error(gpt2, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CorpusError, match="cannot write the token cache"):
        TokenData.build(Corpus("t", "hello"), gpt2, cache_dir=blocker / "tokens")


# -- fitting checks ------------------------------------------------------------------------


def test_too_short_corpus_message():
    data = TokenData(tokens=np.zeros(555, dtype=np.uint16), n_train=500)
    with pytest.raises(CorpusError) as err:
        check_fits(data, context_length=128, batch_size=1)
    msg = str(err.value)
    assert "train split has 500 tokens, val split 55" in msg
    assert "context 128 needs at least 129 in each" in msg
    assert "use --context 54 or less, or more text" in msg
    check_fits(data, context_length=54, batch_size=1)


def test_batch_too_big_message():
    data = TokenData.from_tokens(np.zeros(5145, dtype=np.uint16))
    check_fits(data, 256, batch_size=2)  # Raschka's setup: 18 windows -> 9 batches of 2
    with pytest.raises(CorpusError, match="only 18 windows of 256 tokens.*use --batch-size 18 or less"):
        check_fits(data, 256, batch_size=32)
    with pytest.raises(CorpusError, match="9 for each of 2 processes"):
        check_fits(data, 256, batch_size=16, world_size=2)


# -- batches ---------------------------------------------------------------------------------


def _batches(**kw) -> Batches:
    tokens = np.arange(2000, dtype=np.uint16)
    args = dict(context_length=16, batch_size=4, seed=7) | kw
    return Batches(tokens, **args)


def _as_list(batches) -> list[list[int]]:
    return [x[:, 0].tolist() for x, _ in batches]


def test_windows_and_targets():
    b = _batches(stride=16)
    assert b.n_windows == (2000 - 17) // 16 + 1
    assert b.batches_per_epoch == b.n_windows // 4 == len(b)
    x, y = next(b.epoch_batches(0))
    assert x.shape == y.shape == (4, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    assert all(int(s) % 16 == 0 for s in x[:, 0])
    assert x.is_contiguous() and y.is_contiguous()


def test_raschka_the_verdict_shape():
    b = Batches(np.zeros(4630, dtype=np.uint16), 256, 2, shuffle=False)
    assert (b.n_windows, b.batches_per_epoch) == (18, 9)
    assert len(eval_batches(np.zeros(515, dtype=np.uint16), 256, 2, max_batches=10)) == 1


def test_deterministic_per_seed_and_epoch():
    assert _as_list(_batches().epoch_batches(0)) == _as_list(_batches().epoch_batches(0))
    assert _as_list(_batches().epoch_batches(0)) != _as_list(_batches().epoch_batches(1))
    assert _as_list(_batches().epoch_batches(0)) != _as_list(_batches(seed=8).epoch_batches(0))
    every = sorted(s for batch in _as_list(_batches().epoch_batches(3)) for s in batch)
    assert len(every) == len(set(every))  # each window at most once per epoch


def test_unshuffled_order():
    firsts = _as_list(_batches(shuffle=False).epoch_batches(0))
    assert firsts[0] == [0, 16, 32, 48]


def test_rank_shards_are_disjoint_and_cover():
    world = 3
    shards = [set(_batches(rank=r, world_size=world).epoch_windows(5).tolist()) for r in range(world)]
    assert all(len(s) == len(shards[0]) for s in shards)
    assert not (shards[0] & shards[1] or shards[0] & shards[2] or shards[1] & shards[2])
    n = _batches().n_windows
    assert len(set().union(*shards)) == n - n % world


def test_start_batch_resumes_exactly():
    full = list(_batches().epoch_batches(2))
    resumed = list(_batches().epoch_batches(2, start_batch=5))
    assert len(resumed) == len(full) - 5
    for (x1, y1), (x2, y2) in zip(full[5:], resumed):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert list(_batches().epoch_batches(2, start_batch=10_000)) == []


def test_batches_errors():
    with pytest.raises(CorpusError, match="needs at least 17"):
        Batches(np.arange(10), 16, 1)
    with pytest.raises(CorpusError, match="batch size 64"):
        Batches(np.arange(200), 16, 64)
    with pytest.raises(ConfigError, match="rank"):
        Batches(np.arange(200), 16, 1, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="batch_size"):
        Batches(np.arange(200), 16, 0)
    with pytest.raises(ConfigError, match="start_batch"):
        next(_batches().epoch_batches(0, start_batch=-1))


def test_memmap_batches(gpt2):
    data = TokenData.build(Corpus("t", _text(2000)), gpt2)
    b = Batches(data.train, 32, 8)
    x, y = next(b.epoch_batches(0))
    assert x.shape == (8, 32) and int(x.max()) < gpt2.vocab_size


# -- eval batches ----------------------------------------------------------------------------


def test_eval_batches_fixed_and_bounded():
    tokens = np.arange(10_000, dtype=np.uint16)
    a = eval_batches(tokens, 16, 4, max_batches=3)
    b = eval_batches(tokens, 16, 4, max_batches=3)
    assert len(a) == 3 and all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b))
    starts = [int(s) for x, _ in a for s in x[:, 0]]
    assert starts[0] == 0 and starts[-1] > 9000  # spread across the whole split
    small = eval_batches(np.arange(100, dtype=np.uint16), 16, 4, max_batches=10)
    assert [x.shape[0] for x, _ in small] == [4, 2]  # 6 windows, last batch smaller
    with pytest.raises(CorpusError, match="validation split has 10 tokens"):
        eval_batches(np.arange(10), 16, 4, 1)


# -- optional: real data -------------------------------------------------------------------------


@pytest.mark.skipif(not (SHARED_DATA / "the-verdict.txt").is_file(), reason="../shared/data is absent")
def test_the_verdict_token_count(gpt2):
    corpus = load_corpus([str(SHARED_DATA / "the-verdict.txt")])
    data = TokenData.build(corpus, gpt2)
    assert data.n_tokens == 5145  # as in Raschka's book
    assert Batches(data.train, 256, 2).batches_per_epoch == 9

"""Corpus loading: embedded default, user files, named corpora (never the network)."""

from __future__ import annotations

import hashlib
import io
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gptmini.errors import ConfigError, CorpusError
from gptmini.text import corpus as cp
from gptmini.text.corpus import NAMED_CORPORA, Corpus, fetch_named_corpus, load_corpus

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GPTMINI_CACHE_DIR", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


class FakeOpener:
    """Stands in for urllib.request.urlopen: returns fixed bytes or raises."""

    def __init__(self, payload: bytes | None = None, error: Exception | None = None):
        self.payload, self.error, self.calls = payload, error, []

    def __call__(self, url, timeout=None):
        self.calls.append((url, timeout))
        if self.error is not None:
            raise self.error
        return io.BytesIO(self.payload)


@pytest.fixture
def fake_verdict(monkeypatch):
    """Pretend the-verdict is these bytes (so no real file is needed)."""
    payload = b"I HAD always thought Jack Gisburn rather a cheap genius.\n" * 20
    info = dict(NAMED_CORPORA["the-verdict"], sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))
    monkeypatch.setitem(NAMED_CORPORA, "the-verdict", info)
    return payload


# -- embedded default ----------------------------------------------------------------


def test_default_is_embedded_python_reference():
    c = load_corpus()
    assert c.name == "python-reference"
    assert 300_000 < c.n_bytes < 2_000_000
    assert c.n_bytes == len(c.text.encode("utf-8"))
    assert "assert" in c.text and "\n\n" in c.text
    assert c.describe().startswith("python-reference (") and c.describe().endswith(" KB)")
    assert load_corpus(corpus="python-reference").fingerprint == c.fingerprint


# -- user files -----------------------------------------------------------------------


def test_single_file(tmp_path):
    f = tmp_path / "story.txt"
    f.write_text("Once upon a time.\n", encoding="utf-8")
    c = load_corpus([str(f)])
    assert c.name == "story" and c.text == "Once upon a time.\n" and c.sources == [str(f)]
    assert c.documents == ["Once upon a time.\n"]


def test_directory_recurses_sorted_txt_and_md(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.md").write_text("two")
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "c.txt").write_text("three")
    (tmp_path / "skip.py").write_text("print()")
    (tmp_path / "blank.txt").write_text("  \n\n")
    c = load_corpus([str(tmp_path)])
    assert c.documents == ["one", "two", "three"]
    assert c.text == "one\n\ntwo\n\nthree"
    assert c.n_bytes == len(c.text) and c.n_documents == 3
    assert "3 files" in c.describe()


def test_glob_and_duplicates(tmp_path):
    for name in ("x1.txt", "x2.txt", "y.txt"):
        (tmp_path / name).write_text(name)
    c = load_corpus([str(tmp_path / "x*.txt"), str(tmp_path / "x1.txt")])
    assert c.documents == ["x1.txt", "x2.txt"]


def test_bom_is_skipped(tmp_path):
    f = tmp_path / "bom.txt"
    f.write_bytes(b"\xef\xbb\xbfhello")
    c = load_corpus(str(f))
    assert c.text == "hello" and c.n_bytes == 5


def test_fingerprint_tracks_contents_and_boundaries(tmp_path):
    one = Corpus("x", "a\n\nb")
    two = Corpus("y", documents=["a", "b"])
    assert one.text == two.text and one.fingerprint != two.fingerprint
    f = tmp_path / "a.txt"
    f.write_text("a\n\nb")
    assert load_corpus(str(f)).fingerprint == one.fingerprint


def test_file_changed_after_loading_is_detected(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("original text")
    c = load_corpus(str(f))
    f.write_text("edited text!!")
    with pytest.raises(CorpusError, match="changed while it was being read"):
        list(c.iter_blocks())


def test_iter_blocks_add_up(tmp_path):
    (tmp_path / "a.txt").write_text("héllo " * 1000)
    (tmp_path / "b.txt").write_text("wörld " * 1000)
    c = load_corpus(str(tmp_path))
    pieces = list(c.iter_blocks(block_bytes=100))
    assert "".join(p for p, _ in pieces) == c.text
    assert sum(n for _, n in pieces) == c.n_bytes
    assert "".join(c.iter_text(block_bytes=64)) == c.text
    assert "".join(p for p, _ in c.iter_blocks("|", 64)) == c.text.replace("\n\n", "|")


# -- bad input: one clear CorpusError each -------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(CorpusError, match="no such file or directory: .*nope.txt"):
        load_corpus([str(tmp_path / "nope.txt")])


def test_glob_without_matches(tmp_path):
    with pytest.raises(CorpusError, match=r"no files match .*\*\.txt"):
        load_corpus([str(tmp_path / "*.txt")])


def test_directory_without_text_files(tmp_path):
    (tmp_path / "x.py").write_text("print()")
    with pytest.raises(CorpusError, match="has no .txt or .md files"):
        load_corpus([str(tmp_path)])


def test_empty_corpus(tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text(" \n\t\n")
    with pytest.raises(CorpusError, match="empty"):
        load_corpus([str(f)])
    with pytest.raises(CorpusError, match="empty"):
        Corpus("x", "   ")


def test_non_utf8_file_names_offset(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("abc café".encode("latin-1"))
    with pytest.raises(CorpusError) as err:
        load_corpus([str(f)])
    msg = str(err.value)
    assert "latin1.txt" in msg and "not UTF-8" in msg and "byte offset 7" in msg and "0xE9" in msg


def test_non_utf8_offset_across_blocks(tmp_path):
    f = tmp_path / "late.txt"
    f.write_bytes(b"a" * 4095 + "é".encode() + b"b" * 10 + b"\xff")  # é straddles a 4096-byte block
    with pytest.raises(CorpusError, match="byte offset 4107"):
        list(cp._FileScan(f).blocks(block_bytes=4096))


def test_truncated_utf8_at_end(tmp_path):
    f = tmp_path / "cut.txt"
    f.write_bytes(b"hello " + "é".encode()[:1])
    with pytest.raises(CorpusError, match="byte offset 6"):
        load_corpus([str(f)])


def test_binary_file(tmp_path):
    f = tmp_path / "model.bin.txt"
    f.write_bytes(b"PK\x03\x04\x00\x00\xff\xfe")
    with pytest.raises(CorpusError, match=r"binary file \(NUL byte at byte offset 4\)"):
        load_corpus([str(f)])


def test_data_and_corpus_together():
    with pytest.raises(ConfigError, match="either --data or --corpus"):
        load_corpus(["x.txt"], "the-verdict")


def test_unknown_corpus_name():
    with pytest.raises(CorpusError, match="python-reference, the-verdict, tiny-shakespeare"):
        load_corpus(corpus="wikipedia")


# -- named corpora with a fake opener ---------------------------------------------------------


def test_fetch_good_hash_is_cached(tmp_path, fake_verdict):
    opener = FakeOpener(fake_verdict)
    path = fetch_named_corpus("the-verdict", tmp_path, url_opener=opener)
    assert path == tmp_path / "the-verdict.txt" and path.read_bytes() == fake_verdict
    assert opener.calls == [(NAMED_CORPORA["the-verdict"]["url"], cp.DOWNLOAD_TIMEOUT_S)]
    assert fetch_named_corpus("the-verdict", tmp_path, url_opener=FakeOpener(error=AssertionError())) == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["the-verdict.txt"]


def test_fetch_bad_hash_keeps_nothing(tmp_path, fake_verdict):
    with pytest.raises(CorpusError) as err:
        fetch_named_corpus("the-verdict", tmp_path, url_opener=FakeOpener(b"<html>rate limited</html>"))
    msg = str(err.value)
    assert NAMED_CORPORA["the-verdict"]["sha256"] in msg and "not kept" in msg
    assert list(tmp_path.iterdir()) == []


def test_fetch_replaces_corrupt_cache(tmp_path, fake_verdict):
    (tmp_path / "the-verdict.txt").write_bytes(b"truncated")
    path = fetch_named_corpus("the-verdict", tmp_path, url_opener=FakeOpener(fake_verdict))
    assert path.read_bytes() == fake_verdict


@pytest.mark.parametrize(
    "error",
    [urllib.error.URLError("Temporary failure in name resolution"), TimeoutError("timed out")],
)
def test_fetch_offline_message(tmp_path, error):
    with pytest.raises(CorpusError) as err:
        fetch_named_corpus("tiny-shakespeare", tmp_path, url_opener=FakeOpener(error=error))
    msg = str(err.value)
    assert "could not download tiny-shakespeare from https://raw.githubusercontent.com" in msg
    assert "offline" in msg and "--data PATH" in msg and str(error.args[0]) in msg
    assert list(tmp_path.iterdir()) == []


def test_load_named_corpus_uses_cache_dir_env(tmp_path, fake_verdict, monkeypatch):
    folder = cp.corpus_cache_dir()
    assert folder == tmp_path / "cache" / "corpora"
    fetch_named_corpus("the-verdict", url_opener=FakeOpener(fake_verdict))
    c = load_corpus(corpus="the-verdict")  # cached: the network is never touched
    assert c.name == "the-verdict" and c.text == fake_verdict.decode()
    assert c.sources == [str(folder / "the-verdict.txt")]


# -- optional: the real files in ../shared/data -------------------------------------------------

needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")


@needs_shared
@pytest.mark.parametrize(
    "name, filename", [("the-verdict", "the-verdict.txt"), ("tiny-shakespeare", "tinyshakespeare.txt")]
)
def test_real_named_corpora_hashes(tmp_path, name, filename):
    payload = (SHARED_DATA / filename).read_bytes()
    path = fetch_named_corpus(name, tmp_path, url_opener=FakeOpener(payload))
    assert path.stat().st_size == NAMED_CORPORA[name]["size"]
    c = load_corpus(corpus=name, cache_dir=tmp_path)
    assert c.n_bytes == NAMED_CORPORA[name]["size"]


@needs_shared
def test_shared_copy_via_data(tmp_path):
    shutil.copy(SHARED_DATA / "the-verdict.txt", tmp_path / "v.txt")
    c = load_corpus([str(tmp_path / "v.txt")])
    assert c.describe() == "v (20 KB)"
    assert c.text.startswith("I HAD always thought Jack Gisburn")


def test_corpus_names(tmp_path, monkeypatch):
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "a.txt").write_text("a")
    (tmp_path / "b.md").write_text("b")
    monkeypatch.chdir(tmp_path / "books")
    assert load_corpus(".").name == "books"
    assert load_corpus(str(tmp_path / "books")).name == "books"
    assert load_corpus([str(tmp_path / "books"), str(tmp_path / "b.md")]).name == "books + 1 more"
    assert load_corpus(str(tmp_path / "*.md")).name == str(tmp_path / "*.md")


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs here")
def test_a_fifo_among_the_text_files_is_named_not_ignored(tmp_path):
    """A FIFO named like a text file would block a read forever; the folder is not "empty" either."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "texts"
    folder.mkdir()
    os.mkfifo(folder / "a.txt")
    with pytest.raises(CorpusError, match=r"a\.txt is a FIFO \(named pipe\), not a text file"):
        load_corpus(str(folder))
    (folder / "b.txt").write_text("some text")
    out = subprocess.run([sys.executable, "-m", "gptmini", "prepare", "--data", str(folder)], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {folder / 'a.txt'} is a FIFO (named pipe), not a text file")
    broken = tmp_path / "gone.txt"
    broken.symlink_to(tmp_path / "nowhere.txt")
    with pytest.raises(CorpusError, match="is a broken symbolic link"):
        load_corpus(str(broken))
    with pytest.raises(CorpusError, match="is a FIFO"):
        load_corpus(str(folder / "*.txt"))

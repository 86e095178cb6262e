"""Downloads without a network: one line, without waiting for retries or timeouts; a stop ends one halfway and
keeps nothing."""

from __future__ import annotations

import socket
import threading

import pytest

from gptmini.errors import CorpusError
from gptmini.stopping import Stopped, stoppable
from gptmini.text import corpus as corpus_module
from gptmini.text.corpus import fetch_named_corpus
from gptmini.text.fetch import unreachable
from tests.test_cli import TINY, run

REFUSED = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once


@pytest.mark.parametrize("how", ["unreachable", "HF_HUB_OFFLINE"])
def test_init_from_gpt2_offline_is_one_line(tmp_path, tiny_text, monkeypatch, how):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    monkeypatch.setenv("HF_ENDPOINT", REFUSED)
    if how == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    out = run("train", "--init-from", "gpt2", "--data", str(tiny_text), *TINY[8:], "--max-steps", "1",
              "--out", str(tmp_path / "run"), cwd=tmp_path)
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, lines  # no retry messages of the hub client
    reason = "HF_HUB_OFFLINE is set" if how == "HF_HUB_OFFLINE" else "127.0.0.1: Connection refused"
    assert lines[0].startswith(f"error: could not fetch openai-community/gpt2 from the Hugging Face Hub ({reason})")
    assert "--init-from DIR" in lines[0]
    assert not (tmp_path / "run").exists()


def test_a_named_corpus_offline_is_one_line_naming_the_cause(tmp_path, monkeypatch):
    info = dict(corpus_module.NAMED_CORPORA["the-verdict"], url=f"{REFUSED}/the-verdict.txt")
    monkeypatch.setitem(corpus_module.NAMED_CORPORA, "the-verdict", info)
    with pytest.raises(CorpusError) as caught:
        fetch_named_corpus("the-verdict", tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "127.0.0.1: Connection refused" in message and "--data PATH" in message
    assert list(tmp_path.iterdir()) == []


def test_a_host_that_never_answers_is_given_up_on(monkeypatch):
    hang = threading.Event()

    def never_answers(*args, **kwargs):
        hang.wait(60)
        raise OSError("gave up")

    monkeypatch.setattr(socket, "create_connection", never_answers)
    try:
        assert unreachable("https://example.invalid/x", timeout=0.2) == "example.invalid did not answer within 0.2 s"
    finally:
        hang.set()


def test_a_proxy_is_left_to_decide(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    assert unreachable("https://example.invalid/x") is None


class Chunks:
    """A response that hands out chunks; the test's stop arrives after the first."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop, self.sent = stop, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, n):
        self.sent += 1
        if self.sent == 2:
            self.stop.set()
        return b"x" * 100


def test_a_stop_ends_a_download_and_keeps_nothing(tmp_path):
    stop = threading.Event()
    with stoppable(stop), pytest.raises(Stopped):
        fetch_named_corpus("the-verdict", tmp_path, url_opener=lambda url, timeout: Chunks(stop))
    assert list(tmp_path.iterdir()) == []

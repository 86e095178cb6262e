"""Tokenizers: GPT-2 offline BPE and the char vocabulary."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from gptmini.errors import ConfigError, TokenizerError
from gptmini.text import tokenizer as tk
from gptmini.text.tokenizer import (
    CharTokenizer,
    GPT2Tokenizer,
    build_tokenizer,
    tokenizer_from_description,
)

UNICODE = "Era uma vez um dragão 🐉"


@pytest.fixture(scope="module")
def gpt2() -> GPT2Tokenizer:
    return build_tokenizer("gpt2")  # type: ignore[return-value]


def _tricky_text(n_lines: int = 3000, seed: int = 0) -> str:
    """Many lines with the whitespace patterns that could break naive chunking."""
    rng = random.Random(seed)
    parts = ["word", "Word", " ", "  ", "\t", "\n", "\n\n", "\r\n", "  \n", "'s", "'ll", "42", "!?", "é", "🐉"]
    parts.append("<|endoftext|>")
    return "\n".join("".join(rng.choice(parts) for _ in range(rng.randint(0, 12))) for _ in range(n_lines))


# -- gpt2 --------------------------------------------------------------------------


def test_gpt2_known_ids(gpt2):
    assert gpt2.encode("Every effort moves you") == [6109, 3626, 6100, 345]
    assert gpt2.vocab_size == 50257 and gpt2.eot_id == 50256 and gpt2.name == "gpt2"
    assert gpt2.encode("a<|endoftext|>b") == [64, 50256, 65]
    assert gpt2.decode([50256]) == "<|endoftext|>"


def test_gpt2_unicode_round_trip(gpt2):
    ids = gpt2.encode(UNICODE)
    assert gpt2.decode(ids) == UNICODE
    assert gpt2.decode_bytes(ids) == UNICODE.encode("utf-8")
    # the dragon is split across byte-level tokens: each alone is not valid UTF-8
    assert b"".join(gpt2.decode_bytes([i]) for i in ids) == UNICODE.encode("utf-8")


def test_gpt2_decode_accepts_arrays_and_rejects_bad_ids(gpt2):
    ids = gpt2.encode("hello world")
    assert gpt2.decode(np.array(ids, dtype=np.uint16)) == "hello world"
    with pytest.raises(TokenizerError, match="50257 is out of range"):
        gpt2.decode([1, 50257])
    with pytest.raises(TokenizerError, match="out of range"):
        gpt2.decode_bytes([-1])


def test_gpt2_token_text(gpt2):
    assert gpt2.token_text(gpt2.encode(" moves")[0]) == "␣moves"
    assert gpt2.token_text(198) == "\\n"
    assert gpt2.token_text(50256) == "<|endoftext|>"
    partial = gpt2.token_text(gpt2.encode("🐉")[-1])
    assert partial.startswith("\\x")


def test_gpt2_encode_to_array_equals_encode(gpt2):
    text = _tricky_text()
    expected = gpt2.encode(text)
    seen = []
    arr = gpt2.encode_to_array(text, progress=lambda done, total: seen.append((done, total)), chunk_chars=997)
    assert arr.dtype == np.uint16
    assert arr.tolist() == expected
    assert len(seen) > 10 and seen[-1] == (len(text), len(text))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_gpt2_encode_stream_any_block_boundaries(gpt2):
    text = _tricky_text(800, seed=1)
    rng = random.Random(2)
    blocks, i = [], 0
    while i < len(text):
        n = rng.randint(1, 300)
        blocks.append(text[i : i + n])
        i += n
    arrays = list(gpt2.encode_stream(blocks, chunk_chars=500))
    assert len(arrays) > 5
    assert np.concatenate(arrays).tolist() == gpt2.encode(text)


def test_gpt2_chunking_without_newlines(gpt2):
    text = "lorem ipsum dolor " * 2000  # one long line: falls back to splitting at spaces
    assert gpt2.encode_to_array(text, chunk_chars=1000).tolist() == gpt2.encode(text)
    spaces = "\n" * 5000  # no safe split point at all: still correct, in one piece
    assert gpt2.encode_to_array(spaces, chunk_chars=100).tolist() == gpt2.encode(spaces)


def test_gpt2_bad_files_are_rejected(monkeypatch, tmp_path):
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\n")
    (tmp_path / "encoder.json").write_text("{}")
    monkeypatch.setattr(tk, "gpt2_data_dir", lambda: tmp_path)
    with pytest.raises(TokenizerError, match="vocab.bpe has sha256 .* expected 1ce16647"):
        tk.verified_gpt2_files()


def test_gpt2_builds_offline(monkeypatch):
    import tiktoken
    import tiktoken.load

    def no_network(*args, **kwargs):
        raise AssertionError("the gpt2 tokenizer tried to download something")

    def read_local(path):
        if "://" in path:
            no_network()
        with open(path, "rb") as f:
            return f.read()

    monkeypatch.setattr(tiktoken, "get_encoding", no_network)
    monkeypatch.setattr(tiktoken.load, "read_file", read_local)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # no data-gym cache: read our files directly
    monkeypatch.setattr(tk, "_gpt2_encoding", None)
    assert GPT2Tokenizer().encode("Every effort moves you") == [6109, 3626, 6100, 345]


# -- char --------------------------------------------------------------------------


def test_char_vocab_sorted_unique():
    tok = build_tokenizer("char", "hello world\n")
    assert tok.name == "char" and tok.eot_id is None
    assert tok.chars == sorted(set("hello world\n"))
    assert tok.vocab_size == len(set("hello world\n"))
    ids = tok.encode("hello")
    assert tok.decode(ids) == "hello"
    assert tok.decode_bytes(ids) == b"hello"


def test_char_vocab_from_pieces():
    assert build_tokenizer("char", iter(["ab", "ba", "c"])).chars == ["a", "b", "c"]


def test_char_unknown_character_message():
    tok = build_tokenizer("char", "abc ")
    with pytest.raises(TokenizerError) as err:
        tok.encode("ab é c🐉")
    msg = str(err.value)
    assert "'é' at position 3" in msg and "'🐉' at position 6" in msg and "4 characters" in msg


def test_char_encode_to_array_and_errors():
    text = _tricky_text(500)
    tok = build_tokenizer("char", text)
    arr = tok.encode_to_array(text * 2, chunk_chars=1000)
    assert arr.dtype == np.uint16 and arr.tolist() == tok.encode(text * 2)
    with pytest.raises(TokenizerError, match="'Z' at position 2500"):
        build_tokenizer("char", "ab").encode_to_array("ab" * 1250 + "Z", chunk_chars=100)


def test_char_decode_out_of_range():
    tok = build_tokenizer("char", "abc")
    with pytest.raises(TokenizerError, match="token id 3 is out of range"):
        tok.decode([0, 3])


def test_char_token_text():
    tok = build_tokenizer("char", "a \n\t")
    assert [tok.token_text(i) for i in range(tok.vocab_size)] == ["\\t", "\\n", "␣", "a"]


# -- descriptions and factory ------------------------------------------------------------


@pytest.mark.parametrize("name", ["gpt2", "char"])
def test_describe_round_trip(name):
    tok = build_tokenizer(name, "the quick brown fox\n" if name == "char" else None)
    d = json.loads(json.dumps(tok.describe()))
    again = tokenizer_from_description(d)
    assert type(again) is type(tok)
    assert again.describe() == tok.describe()
    assert again.vocab_size == tok.vocab_size and again.eot_id == tok.eot_id
    assert again.encode("the fox") == tok.encode("the fox")
    assert again.description_hash() == tok.description_hash()


def test_char_description_keeps_order():
    tok = CharTokenizer(["b", "a"])
    assert tokenizer_from_description(tok.describe()).encode("ab") == [1, 0]


@pytest.mark.parametrize(
    "desc, match",
    [
        ({}, "not a tokenizer description"),
        ("gpt2", "not a tokenizer description"),
        ({"name": "sentencepiece"}, "unknown tokenizer 'sentencepiece'"),
        ({"name": "char"}, "no 'chars' list"),
        ({"name": "char", "chars": ["a", "bc"]}, "single characters"),
        ({"name": "char", "chars": ["a", "a"]}, "duplicate"),
        ({"name": "char", "chars": []}, "empty"),
        ({"name": "char", "chars": ["a", "b"], "vocab_size": 3}, "vocab_size = 3"),
        ({"name": "gpt2", "vocab_size": 50304}, "vocab_size = 50304"),
    ],
)
def test_bad_descriptions(desc, match):
    with pytest.raises(TokenizerError, match=match):
        tokenizer_from_description(desc)


def test_build_tokenizer_errors():
    with pytest.raises(ConfigError, match="choose one of: gpt2, char"):
        build_tokenizer("bpe")
    with pytest.raises(ConfigError, match="needs the training text"):
        build_tokenizer("char")


def test_dtype():
    assert build_tokenizer("char", "ab").dtype == np.uint16
    big = CharTokenizer([chr(i) for i in range(0x100, 0x100 + 70000) if not 0xD800 <= i < 0xE000])
    assert big.dtype == np.uint32

"""Every reader of the user's input, fed anything (hypothesis): it reads it, or says what is wrong in one line
that names the place (a ``GPTMiniError``); never a traceback."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gptmini.cli.args import train_config_from_args
from gptmini.cli.sampling_options import settings_from_options
from gptmini.data.instructions import read_records
from gptmini.data.labelled import read_labelled, read_rows
from gptmini.data.tokens import TokenData
from gptmini.errors import GPTMiniError
from gptmini.options import BY_NAME
from gptmini.sample.strategies import KNOBS, STRATEGIES
from gptmini.text.corpus import load_corpus
from gptmini.text.tokenizer import build_tokenizer

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def one_line_naming(call, place: str | None) -> None:
    """``call()`` succeeds, or raises a GPTMiniError whose message is one line (naming ``place``)."""
    try:
        call()
    except GPTMiniError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, message
        if place is not None:
            assert place in message, message


def text_bytes(alphabet: str, max_size: int = 200):
    return st.text(alphabet=alphabet, max_size=max_size).map(lambda t: t.encode("utf-8"))


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["instruction", "input", "output", "prompt", "completion", "text", "label", "x"]), inner,
        max_size=4),
    max_leaves=12)
JSON_LINES = st.lists(JSONISH, max_size=4).map(lambda items: "\n".join(map(json.dumps, items)).encode())
ANY_BYTES = st.binary(max_size=300)


@FUZZ
@given(data=st.one_of(ANY_BYTES, text_bytes("ab \n\r\t\x00\ufeff<|endoftext|>é🐉")))
def test_a_corpus_file_of_any_bytes_reads_and_tokenises_or_is_one_line(folder, tmp_path_factory, data):
    path = folder / "corpus.txt"
    path.write_bytes(data)
    cache = tmp_path_factory.getbasetemp() / "fuzz-tokens"

    def read_and_tokenise():
        corpus = load_corpus(str(path))
        for name in ("gpt2", "char"):
            tokenizer = build_tokenizer(name, corpus.iter_text() if name == "char" else None)
            TokenData.build(corpus, tokenizer, cache_dir=cache)

    one_line_naming(read_and_tokenise, str(path))


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else "inf" if value == math.inf else "-inf" if value == -math.inf else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return json.dumps(value, ensure_ascii=True) if isinstance(value, str) else str(value)


SCALAR = st.one_of(st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=8))
OPTION_NAMES = sorted(BY_NAME) + [name.replace("_", "-") for name in BY_NAME] + ["bogus"]


@FUZZ
@given(data=st.one_of(ANY_BYTES, text_bytes("ab=[]\"'#.\n 1-_")))
def test_a_config_file_of_any_bytes_is_read_or_one_line_naming_it(folder, data):
    path = folder / "config.toml"
    path.write_bytes(data)
    one_line_naming(lambda: train_config_from_args(argparse.Namespace(config=str(path))), str(path))


@FUZZ
@given(options=st.dictionaries(st.sampled_from(OPTION_NAMES), st.one_of(SCALAR, st.lists(SCALAR, max_size=3)),
                               max_size=6), table=st.booleans())
def test_a_config_file_of_any_options_and_values_is_read_or_one_line(folder, options, table):
    path = folder / "options.toml"
    path.write_text(("[model]\n" if table else "") + "".join(f"{k} = {toml_value(v)}\n" for k, v in options.items()))
    one_line_naming(lambda: train_config_from_args(argparse.Namespace(config=str(path))), None)


@FUZZ
@given(strategy=st.sampled_from(list(STRATEGIES)),
       knobs=st.fixed_dictionaries({k.name: st.one_of(st.none(), st.integers(-5, 10**12) if k.whole else st.floats())
                                    for k in KNOBS}),
       max_new_tokens=st.integers(-5, 10**9), seed=st.one_of(st.none(), st.integers(-2**70, 2**70)),
       stop=st.one_of(st.none(), st.text(max_size=5)))
def test_any_sampling_options_give_settings_or_one_line_naming_the_flag(strategy, knobs, max_new_tokens, seed, stop):
    args = argparse.Namespace(strategy=strategy, max_new_tokens=max_new_tokens, seed=seed, **knobs)
    try:
        settings_from_options(args, stop=stop)
    except GPTMiniError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("--"), str(exc)


@FUZZ
@given(data=st.one_of(ANY_BYTES, JSONISH.map(lambda v: json.dumps(v).encode()), JSON_LINES),
       suffix=st.sampled_from([".json", ".jsonl"]))
def test_instruction_data_of_any_bytes_is_read_or_one_line_naming_the_file(folder, data, suffix):
    path = folder / f"records{suffix}"
    path.write_bytes(data)
    one_line_naming(lambda: read_records(path), str(path))


@FUZZ
@given(data=st.one_of(ANY_BYTES, text_bytes("ab,\t\"\n\r01 "), JSON_LINES),
       suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".txt"]),
       text_column=st.sampled_from(["text", "label", "0", "1", "99", "²", "x"]),
       label_column=st.sampled_from(["text", "label", "0", "1", "x"]))
def test_labelled_data_of_any_bytes_is_read_or_one_line_naming_the_file(folder, data, suffix, text_column,
                                                                        label_column):
    path = folder / f"labelled{suffix}"
    path.write_bytes(data)
    one_line_naming(lambda: read_labelled(path, text_column, label_column), str(path))
    one_line_naming(lambda: read_rows(path, text_column), str(path))

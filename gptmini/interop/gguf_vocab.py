r"""The tokenizer half of a GGUF file: what llama.cpp needs to tokenise text the way GPTMini does.

* GPT-2's BPE goes in as llama.cpp's ``gpt2`` tokenizer with the ``gpt-2`` pre-tokenizer: the 50,257 tokens
  of ``encoder.json`` (byte-level strings such as ``Ġthe``) in id order, the 50,000 merges of ``vocab.bpe``
  in rank order, and ``<|endoftext|>`` as a control token that is both bos and eos (never added by itself).
* A char vocabulary goes in as llama.cpp's ``rwkv`` tokenizer: a greedy longest match over the bytes of the
  text against the token list. Every token is one whole character and UTF-8 is prefix-free, so the longest
  match is always exactly the next character: the same ids GPTMini's char tokenizer gives. llama.cpp's
  ``gpt2`` (BPE) and ``llama`` (SentencePiece) tokenizers cannot do this: BPE would need merge tokens that
  are not characters for any non-ASCII character, SentencePiece rewrites spaces as ``▁``, and both give the
  vocabulary a default end-of-text token (ids 11 and 2) that would stop generation at an ordinary character;
  the rwkv tokenizer has no special tokens unless the file names them. Its token strings are escaped:
  ``\\`` for a backslash, ``\xNN`` for a control character. A character outside the vocabulary, which
  GPTMini refuses, becomes the rwkv tokenizer's unknown token there: none (-1), which llama.cpp will not eval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gptmini.errors import CheckpointError, ConfigError


def require_gguf() -> Any:
    """The ``gguf`` package (llama.cpp's own reader/writer), or one line saying how to get it."""
    try:
        import gguf
    except ImportError:
        raise ConfigError("--format gguf needs the gguf package: pip install 'gptmini[gguf]' (or: pip install gguf)") from None
    return gguf


@dataclass(frozen=True)
class GGUFVocab:
    """Everything ``tokenizer.ggml.*`` holds for one tokenizer."""

    model: str  # tokenizer.ggml.model
    tokens: list[str]
    token_types: list[int]  # gguf.TokenType values
    pre: str | None = None  # tokenizer.ggml.pre
    merges: list[str] = field(default_factory=list)
    eot_id: int | None = None  # written as bos and eos

    @property
    def eot_text(self) -> str | None:
        return None if self.eot_id is None else self.tokens[self.eot_id]


def gguf_vocab(tokenizer: Any) -> GGUFVocab:
    """The GGUF vocabulary of a GPTMini tokenizer (``gpt2`` or ``char``)."""
    if tokenizer.name == "gpt2":
        return _gpt2_vocab(tokenizer)
    if tokenizer.name == "char":
        return _char_vocab(tokenizer)
    raise CheckpointError(f"cannot export a {tokenizer.name!r} tokenizer to GGUF (only gpt2 and char)")


def _gpt2_vocab(tokenizer: Any) -> GGUFVocab:
    from gptmini.text.tokenizer import verified_gpt2_files

    files = verified_gpt2_files()
    encoder: dict[str, int] = json.loads(files["encoder.json"].read_text(encoding="utf-8"))
    tokens = sorted(encoder, key=encoder.__getitem__)
    if [encoder[t] for t in tokens] != list(range(tokenizer.vocab_size)):
        raise CheckpointError(f"{files['encoder.json']} does not number GPT-2's {tokenizer.vocab_size} tokens 0..n-1")
    lines = files["vocab.bpe"].read_text(encoding="utf-8").split("\n")
    merges = [line for line in lines[1:] if line]  # line 0 is "#version: 0.2"
    token_type = require_gguf().TokenType
    types = [int(token_type.NORMAL)] * len(tokens)
    types[tokenizer.eot_id] = int(token_type.CONTROL)
    return GGUFVocab(model="gpt2", pre="gpt-2", tokens=tokens, token_types=types, merges=merges,
                     eot_id=tokenizer.eot_id)


def _char_vocab(tokenizer: Any) -> GGUFVocab:
    tokens = [rwkv_escape(c) for c in tokenizer.chars]
    return GGUFVocab(model="rwkv", tokens=tokens, token_types=[int(require_gguf().TokenType.NORMAL)] * len(tokens))


def rwkv_escape(text: str) -> str:
    """A token's text as llama.cpp's rwkv tokenizer reads it back (``llama_unescape_rwkv_token``)."""
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif ord(c) < 0x20 or c == "\x7f":
            out.append(f"\\x{ord(c):02x}")  # llama.cpp parses lowercase hex digits only
        else:
            out.append(c)
    return "".join(out)

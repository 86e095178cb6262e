"""The book's own model (``llms_from_scratch.ch04.GPTModel``, Raschka's chapter 4) and GPTMini's ``GPT``,
weight for weight, both ways: a reader can move a model between their notebook and GPTMini, and the
benchmarks and parity tests put the same weights in both.

The book's model keeps q, k and v in three ``nn.Linear`` layers (GPTMini: one ``c_attn``), calls its
LayerNorm parameters ``scale``/``shift`` and has an output head of its own (``out_head``). Nothing here
imports the book's package: pass its ``GPTModel`` class.
"""

from __future__ import annotations

from typing import Any

import torch

from gptmini.model.config import ModelConfig
from gptmini.model.gpt import GPT


def book_config(cfg: ModelConfig) -> dict[str, Any]:
    """The book's config dict for a model of GPTMini shape ``cfg``."""
    if not cfg.bias:
        raise ValueError("the book's model has biases in its linear and LayerNorm layers; this model has none")
    return {"vocab_size": cfg.vocab_size, "context_length": cfg.context_length, "emb_dim": cfg.d_model,
            "n_heads": cfg.n_heads, "n_layers": cfg.n_layers, "drop_rate": cfg.dropout, "qkv_bias": cfg.qkv_bias}


def _pairs(model: GPT, book: torch.nn.Module):
    """``(ours, theirs)`` parameter pairs; q, k, v are handled by the callers."""
    V = model.config.vocab_size
    yield model.wte.weight[:V], book.tok_emb.weight
    yield model.wpe.weight, book.pos_emb.weight
    for blk, rb in zip(model.h, book.trf_blocks):
        yield blk.attn.c_proj.weight, rb.att.out_proj.weight
        yield blk.attn.c_proj.bias, rb.att.out_proj.bias
        yield blk.mlp.c_fc.weight, rb.ff.layers[0].weight
        yield blk.mlp.c_fc.bias, rb.ff.layers[0].bias
        yield blk.mlp.c_proj.weight, rb.ff.layers[2].weight
        yield blk.mlp.c_proj.bias, rb.ff.layers[2].bias
        yield blk.ln_1.weight, rb.norm1.scale
        yield blk.ln_1.bias, rb.norm1.shift
        yield blk.ln_2.weight, rb.norm2.scale
        yield blk.ln_2.bias, rb.norm2.shift
    yield model.ln_f.weight, book.final_norm.scale
    yield model.ln_f.bias, book.final_norm.shift
    head = model.wte.weight if model.lm_head is None else model.lm_head.weight
    yield head[:V], book.out_head.weight


@torch.no_grad()
def to_book(model: GPT, gpt_model_class: type) -> torch.nn.Module:
    """A new book ``GPTModel`` holding ``model``'s weights (an untied head: the book's model has its own)."""
    book = gpt_model_class(book_config(model.config))
    for ours, theirs in _pairs(model, book):
        theirs.copy_(ours)
    for blk, rb in zip(model.h, book.trf_blocks):
        att = rb.att
        for part, (w, b) in zip((att.W_query, att.W_key, att.W_value),
                                zip(blk.attn.c_attn.weight.chunk(3), _chunks(blk.attn.c_attn.bias))):
            part.weight.copy_(w)
            if part.bias is not None:
                part.bias.copy_(b)
    return book


@torch.no_grad()
def from_book(book: torch.nn.Module, model: GPT) -> GPT:
    """``model`` (of the book model's shape) given the book model's weights; with a tied head, the book's
    ``out_head`` must equal its token embedding (as after loading GPT-2 into it)."""
    if model.lm_head is None and not torch.equal(book.out_head.weight, book.tok_emb.weight):
        raise ValueError("the book model's output head differs from its token embedding; build GPTMini's model "
                         "with tie_weights=False")
    model.wte.weight.zero_()  # the rows past the vocabulary are padding, never used
    for ours, theirs in _pairs(model, book):
        ours.copy_(theirs)
    for blk, rb in zip(model.h, book.trf_blocks):
        att = rb.att
        blk.attn.c_attn.weight.copy_(torch.cat([att.W_query.weight, att.W_key.weight, att.W_value.weight]))
        if blk.attn.c_attn.bias is not None:
            blk.attn.c_attn.bias.copy_(torch.cat([att.W_query.bias, att.W_key.bias, att.W_value.bias]))
    return model


def _chunks(bias: torch.Tensor | None):
    return bias.chunk(3) if bias is not None else (None, None, None)

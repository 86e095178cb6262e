"""Batched generation (sample/batch.py): every row as if it were alone, whatever pads it or shares its batch."""

from __future__ import annotations

import pytest
import torch

from gptmini.errors import SamplingError
from gptmini.model.config import ModelConfig
from gptmini.model.gpt import GPT
from gptmini.sample.batch import generate_batch, generate_many
from gptmini.sample.sampler import Sampler, TokenEvent
from gptmini.sample.settings import SamplingSettings

VOCAB, CONTEXT, NEW = 50, 48, 40
LENGTHS = (3, 30, 11, 1, 47, 60, 20, 8, 25)  # 60: longer than the context; 30 + 40 new: the window slides


class IdTokenizer:
    """Ids as bytes, one of them the end-of-text (what the Sampler needs to stream ids)."""

    name = "ids"
    vocab_size = VOCAB

    def __init__(self, eot_id: int | None):
        self.eot_id = eot_id

    def decode_bytes(self, ids):
        return bytes(ids)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=VOCAB, context_length=CONTEXT, n_layers=2, n_heads=2, d_model=32))
    with torch.no_grad():  # sharper than at init: varied continuations, no near-ties
        for name, p in m.named_parameters():
            if name.endswith("weight") and "ln" not in name:
                p.mul_(4)
    return m.eval()


@pytest.fixture(scope="module")
def prompts():
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, VOCAB, (n,), generator=g).tolist() for n in LENGTHS]


def sampler_ids(model, prompt, settings, eot):
    events = Sampler(model, IdTokenizer(eot)).stream_ids(prompt, settings)
    return [e.token_id for e in events if e.token_id != TokenEvent.FLUSH]


@pytest.fixture(scope="module")
def eot(model, prompts):
    """An end-of-text that some rows meet early and others never: the fifth greedy token of the first prompt."""
    return sampler_ids(model, prompts[0], SamplingSettings(max_new_tokens=NEW), None)[4]


def test_batched_greedy_equals_the_sampler_for_every_prompt(model, prompts, eot):
    settings = SamplingSettings(max_new_tokens=NEW)
    expected = [sampler_ids(model, p, settings, eot) for p in prompts]
    assert len({len(e) for e in expected}) > 2  # rows end at different steps (some at the end marker)
    for batch_size in (4, len(prompts)):
        got = generate_many(model, prompts, settings, end=[eot], batch_size=batch_size)
        assert [g.ids for g in got] == expected
        assert [g.ended for g in got] == [len(e) < NEW for e in expected]


def test_padding_and_batch_mates_do_not_change_a_row(model, prompts):
    settings = SamplingSettings(max_new_tokens=12)
    short = prompts[0]
    alone = generate_batch(model, [short], settings)[0]
    for mates in ([prompts[4]], [prompts[1], prompts[3]], prompts[5:]):
        assert generate_batch(model, [*mates, short], settings)[-1] == alone


@pytest.mark.parametrize("strategy, knobs", [
    ("temperature", {"temperature": 1.5}),
    ("top-k", {"top_k": 5}),
    ("top-p", {"top_p": 0.8}),
    ("min-p", {"min_p": 0.1, "temperature": 1.5}),
])
def test_seeded_sampling_is_reproducible_and_each_row_draws_as_the_sampler(model, prompts, eot, strategy, knobs):
    settings = SamplingSettings(strategy=strategy, max_new_tokens=NEW, seed=9, **knobs)
    first = generate_many(model, prompts, settings, end=[eot], batch_size=4)
    assert generate_many(model, prompts, settings, end=[eot], batch_size=4) == first
    assert generate_many(model, prompts, settings, end=[eot], batch_size=len(prompts)) == first
    for i, p in enumerate(prompts):  # prompt i samples with seed + i, as `gptmini sample` numbers its samples
        alone = SamplingSettings(strategy=strategy, max_new_tokens=NEW, seed=9 + i, **knobs)
        assert first[i].ids == sampler_ids(model, p, alone, eot)
    other = generate_many(model, prompts, SamplingSettings(strategy=strategy, max_new_tokens=NEW, seed=10, **knobs),
                          end=[eot], batch_size=4)
    assert other != first


def test_an_end_marker_of_several_tokens_ends_a_row_and_is_not_returned(model, prompts):
    settings = SamplingSettings(max_new_tokens=NEW)
    free = generate_batch(model, [prompts[7]], settings)[0].ids
    marker = free[5:7]
    at = next(i for i in range(len(free) - 1) if free[i:i + 2] == marker)
    got = generate_batch(model, [prompts[7]], settings, end=marker)[0]
    assert got.ids == free[:at] and got.ended


def test_the_models_training_mode_is_kept_and_the_global_rng_untouched(model, prompts):
    model.train()
    state = torch.get_rng_state()
    try:
        generate_batch(model, prompts[:2], SamplingSettings(strategy="temperature", max_new_tokens=4, seed=1))
        assert model.training and torch.equal(torch.get_rng_state(), state)
    finally:
        model.eval()


@pytest.mark.parametrize("prompts_, kw, said", [
    ([[]], {}, "a prompt has no tokens"),
    ([[1, VOCAB]], {}, f"token id {VOCAB} is outside the vocabulary"),
    ([[1]], {"seeds": [1, 2]}, "2 seeds for 1 prompts"),
])
def test_bad_prompts_are_one_clear_error(model, prompts_, kw, said):
    with pytest.raises(SamplingError, match=said):
        generate_batch(model, prompts_, SamplingSettings(max_new_tokens=3), **kw)


def test_a_bad_batch_size_is_one_clear_error(model):
    with pytest.raises(SamplingError, match="batch size must be a whole number >= 1, got 0"):
        generate_many(model, [[1]], SamplingSettings(), batch_size=0)

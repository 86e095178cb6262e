"""Sampler: strategies, KV-cache equivalence, streaming text, stops, distribution."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn as nn

import gptmini.sample.sampler as sampling_mod
from gptmini.errors import GPTMiniError, SamplingError, TokenizerError
from gptmini.model.config import ModelConfig
from gptmini.model.gpt import GPT, KVCache
from gptmini.sample.sampler import (
    Candidate,
    Sampler,
    SamplingSettings,
    TokenEvent,
    filter_logits,
    generate_uncached,
)
from tests.helpers import ByteTokenizer


# ------------------------------------------------------------------ fakes
class NoEotByteTokenizer(ByteTokenizer):
    """Same vocabulary, but id 256 is an ordinary (empty) token: generation never ends early."""

    eot_id = None


class CharTokenizer:
    """Tiny char tokenizer without an end-of-text token."""

    name = "char"
    eot_id = None

    def __init__(self, alphabet="abcdefgh ."):
        self.chars = list(alphabet)
        self.vocab_size = len(self.chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    def encode(self, text):
        for c in text:
            if c not in self.index:
                raise TokenizerError(f"character {c!r} is not in the char vocabulary")
        return [self.index[c] for c in text]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)

    def decode_bytes(self, ids):
        return self.decode(ids).encode("utf-8")

    def token_text(self, i):
        return self.chars[i]

    def describe(self):
        return {"name": "char", "chars": self.chars}


class ScriptedModel(nn.Module):
    """Stands in for GPT: after the prompt it always predicts ``script[k]`` for the k-th new token."""

    def __init__(self, vocab_size, script, prompt_len, context_length=256, filler=0):
        super().__init__()
        self.config = ModelConfig(vocab_size=vocab_size, context_length=context_length, n_layers=1, n_heads=1, d_model=4)
        self.dummy = nn.Parameter(torch.zeros(1))
        self.script = list(script)
        self.prompt_len = prompt_len
        self.filler = filler
        self.calls = 0

    def new_cache(self, batch=1, capacity=None):
        return KVCache.empty(self.config, batch, "cpu", torch.float32, capacity)

    def forward(self, idx, targets=None, cache=None, last_only=False):
        self.calls += 1
        B, T = idx.shape
        start = cache.pos if cache is not None else 0
        total = start + T
        if cache is not None:
            cache.pos = total
        k = total - self.prompt_len
        tok = self.script[k] if 0 <= k < len(self.script) else self.filler
        logits = torch.full((B, 1 if last_only else T, self.config.vocab_size), -10.0)
        logits[:, -1, tok] = 10.0
        return logits, None


def tiny_gpt(vocab=257, context=32, layers=2, d_model=32, heads=2, seed=0, scale=1.0):
    torch.manual_seed(seed)
    model = GPT(ModelConfig(vocab_size=vocab, context_length=context, n_layers=layers, n_heads=heads, d_model=d_model))
    if scale != 1.0:  # spread the logits so argmax never sits on a near-tie
        with torch.no_grad():
            model.wte.weight.mul_(scale)
    return model.eval()


def stream_scripted(tok, text, **settings_kw):
    """Stream a model that generates exactly ``tok.encode(text)``; return the events."""
    prompt = "a" if tok.eot_id is None else ""
    prompt_len = len(tok.encode(prompt)) if prompt else 1
    script = tok.encode(text)
    model = ScriptedModel(tok.vocab_size, script, prompt_len, filler=tok.eot_id if tok.eot_id is not None else 0)
    settings = SamplingSettings(max_new_tokens=settings_kw.pop("max_new_tokens", len(script)), **settings_kw)
    return list(Sampler(model, tok).stream(prompt, settings))


# ---------------------------------------------------------------- settings
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(strategy="beam"), "unknown sampling strategy 'beam'; choose one of: greedy, temperature, top-k, top-p"),
        (dict(strategy="temperature", temperature=-0.5), "temperature must be >= 0 (0 means greedy), got -0.5"),
        (dict(strategy="temperature", temperature=float("nan")), "temperature must be a number"),
        (dict(strategy="top-k", top_k=0), "top_k must be at least 1, got 0"),
        (dict(strategy="top-k", top_k=1000), "top_k (1000) is larger than the vocabulary (257 tokens)"),
        (dict(strategy="top-k"), "strategy top-k needs top_k (e.g. top_k=40)"),
        (dict(strategy="top-p"), "strategy top-p needs top_p (e.g. top_p=0.9)"),
        (dict(strategy="top-p", top_p=0.0), "top_p must be in (0, 1] (e.g. 0.9), got 0.0"),
        (dict(strategy="top-p", top_p=1.5), "top_p must be in (0, 1] (e.g. 0.9), got 1.5"),
        (dict(strategy="min-p"), "strategy min-p needs min_p (e.g. min_p=0.05)"),
        (dict(strategy="min-p", min_p=0.0), "min_p must be in (0, 1] (e.g. 0.05), got 0.0"),
        (dict(strategy="min-p", min_p=float("nan")), "min_p must be a number"),
        (dict(max_new_tokens=0), "max_new_tokens must be at least 1, got 0"),
        (dict(seed=-1), "seed must be a whole number >= 0, got -1"),
        (dict(stop=""), "stop string must not be empty"),
    ],
)
def test_validation_messages(kwargs, message):
    with pytest.raises(SamplingError) as info:
        SamplingSettings(**kwargs).validate(257)
    assert message in str(info.value)
    assert isinstance(info.value, GPTMiniError)


def test_valid_settings_pass():
    for s in [
        SamplingSettings(),
        SamplingSettings(strategy="temperature", temperature=0.0),
        SamplingSettings(strategy="top-k", top_k=257),
        SamplingSettings(strategy="top-p", top_p=1.0),
        SamplingSettings(strategy="top-p", top_p=0.9, top_k=5, seed=3, stop="\n"),
    ]:
        s.validate(257)


def test_describe_labels():
    assert SamplingSettings().describe() == "greedy"
    assert SamplingSettings(strategy="top-k", top_k=40, temperature=0.8).describe() == "top-k k=40 T=0.8"
    assert SamplingSettings(strategy="top-p", top_p=0.9).describe() == "top-p p=0.9 T=1"
    assert SamplingSettings(strategy="temperature", temperature=0.7, seed=1).describe() == "temperature T=0.7 seed=1"
    assert SamplingSettings(strategy="temperature", temperature=0).describe() == "temperature T=0 (greedy)"
    assert SamplingSettings(strategy="top-k", top_k=5, top_p=0.5).describe() == "top-k k=5 p=0.5 T=1"
    assert SamplingSettings(strategy="min-p", min_p=0.05, temperature=0.9).describe() == "min-p p=0.05 T=0.9"


# ---------------------------------------------------------------- filter_logits
def _logits(probs):
    return torch.log(torch.tensor(probs, dtype=torch.float32))


@pytest.mark.parametrize(
    "p, kept",
    [(0.1, [0]), (0.4, [0]), (0.5, [0, 1]), (0.7, [0, 1]), (0.71, [0, 1, 2]), (0.9, [0, 1, 2]), (0.95, [0, 1, 2, 3]), (1.0, [0, 1, 2, 3])],
)
def test_top_p_keeps_smallest_set_reaching_p(p, kept):
    probs = [0.1, 0.4, 0.2, 0.3]  # sorted: 0.4 (id 1), 0.3 (id 3), 0.2 (id 2), 0.1 (id 0)
    order = [1, 3, 2, 0]
    out = filter_logits(_logits(probs), SamplingSettings(strategy="top-p", top_p=p))
    expect_ids = sorted(order[i] for i in kept)
    assert sorted(torch.nonzero(out).flatten().tolist()) == expect_ids
    mass = sum(probs[i] for i in expect_ids)
    for i in expect_ids:
        assert out[i].item() == pytest.approx(probs[i] / mass, rel=1e-5)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_top_p_ties_keep_exactly_enough():
    out = filter_logits(torch.zeros(4), SamplingSettings(strategy="top-p", top_p=0.5))
    assert (out > 0).sum().item() == 2  # two of the four equal tokens reach 0.5
    assert out.sum().item() == pytest.approx(1.0)
    out = filter_logits(torch.zeros(4), SamplingSettings(strategy="top-p", top_p=0.51))
    assert (out > 0).sum().item() == 3


def test_top_p_one_keeps_everything_even_tiny_tail():
    logits = torch.tensor([20.0, 0.0, -5.0, -30.0])
    out = filter_logits(logits, SamplingSettings(strategy="top-p", top_p=1.0))
    assert torch.allclose(out, torch.softmax(logits, -1))


def test_top_k_then_renormalise_and_temperature():
    logits = torch.tensor([1.0, 3.0, 2.0, 0.5, 2.5])
    out = filter_logits(logits, SamplingSettings(strategy="top-k", top_k=2, temperature=0.5))
    expect = torch.zeros(5)
    expect[[1, 4]] = torch.softmax(torch.tensor([3.0, 2.5]) / 0.5, -1)
    assert torch.allclose(out, expect, atol=1e-6)
    # top-k with ties keeps exactly k
    out = filter_logits(torch.zeros(6), SamplingSettings(strategy="top-k", top_k=3))
    assert (out > 0).sum().item() == 3


def test_temperature_is_softmax_of_scaled_logits():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(0))
    for t in (0.3, 1.0, 2.5):
        out = filter_logits(logits, SamplingSettings(strategy="temperature", temperature=t))
        assert torch.allclose(out, torch.softmax(logits / t, -1), atol=1e-6)


def test_greedy_and_zero_temperature_are_one_hot():
    logits = torch.tensor([[0.1, 5.0, 2.0], [3.0, -1.0, 2.9]])
    for s in (SamplingSettings(), SamplingSettings(strategy="top-k", top_k=2, temperature=0.0)):
        out = filter_logits(logits, s)
        assert out.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_tiny_temperature_has_no_nan():
    out = filter_logits(torch.tensor([1.0, 2.0, 3.0]), SamplingSettings(strategy="temperature", temperature=1e-30))
    assert not torch.isnan(out).any()
    assert out.tolist() == [0.0, 0.0, 1.0]


def test_top_k_then_top_p_combined():
    probs = [0.05, 0.35, 0.25, 0.2, 0.15]
    s = SamplingSettings(strategy="top-k", top_k=3, top_p=0.7)
    # top-3: ids 1, 2, 3 -> renormalised 0.4375, 0.3125, 0.25; p=0.7 keeps ids 1 and 2
    out = filter_logits(_logits(probs), s)
    assert sorted(torch.nonzero(out).flatten().tolist()) == [1, 2]
    assert out.sum().item() == pytest.approx(1.0)


def test_temperature_strategy_ignores_top_k_field():
    logits = torch.randn(20, generator=torch.Generator().manual_seed(1))
    out = filter_logits(logits, SamplingSettings(strategy="temperature", top_k=2))
    assert (out > 0).sum().item() == 20


@pytest.mark.parametrize("p_min, kept", [(0.05, [0, 1, 2, 3, 4]), (0.125, [0, 1, 2, 3]), (0.4, [0, 1, 2]),
                                          (0.6, [1, 2]), (0.8, [1]), (1.0, [1])])
def test_min_p_keeps_tokens_at_least_p_min_times_the_top_one(p_min, kept):
    probs = [0.2, 0.4, 0.3, 0.06, 0.04]  # a token survives when its probability >= p_min x 0.4
    out = filter_logits(_logits(probs), SamplingSettings(strategy="min-p", min_p=p_min))
    assert torch.nonzero(out).flatten().tolist() == kept
    mass = sum(probs[i] for i in kept)
    for i in kept:
        assert out[i].item() == pytest.approx(probs[i] / mass, rel=1e-5)


def test_min_p_applies_after_temperature_and_ignores_the_other_knobs():
    logits = _logits([0.5, 0.3, 0.15, 0.05])
    # of the top one: 1, 0.6, 0.3, 0.1 at T = 1 (min_p 0.25 keeps three); T = 0.5 squares them: 1, 0.36, 0.09, 0.01
    at_t1 = filter_logits(logits, SamplingSettings(strategy="min-p", min_p=0.25))
    assert torch.nonzero(at_t1).flatten().tolist() == [0, 1, 2]
    out = filter_logits(logits, SamplingSettings(strategy="min-p", min_p=0.25, temperature=0.5, top_k=1, top_p=0.1))
    expect = torch.zeros(4)
    expect[[0, 1]] = torch.softmax(logits[[0, 1]] / 0.5, -1)
    assert torch.allclose(out, expect, atol=1e-6)
    draws = torch.multinomial(out, 2000, replacement=True, generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {0, 1}


def test_the_registry_is_what_the_settings_read():
    from gptmini.sample.strategies import KNOBS, STRATEGIES, owner

    assert list(STRATEGIES) == ["greedy", "temperature", "top-k", "top-p", "min-p"]
    assert [s.key for s in STRATEGIES.values()] == ["1", "2", "3", "4", "5"]
    for knob in KNOBS:
        assert owner(knob).knob is knob
        assert knob.name in SamplingSettings.__dataclass_fields__, knob.name  # where its value lives
        SamplingSettings(strategy=owner(knob).name, **{knob.name: knob.default}).validate(257)
    assert [s.name for s in STRATEGIES.values() if not s.samples] == ["greedy"]


def test_top_k_draws_from_fixed_logits_stay_in_top_k():
    logits = torch.randn(100, generator=torch.Generator().manual_seed(2))
    probs = filter_logits(logits, SamplingSettings(strategy="top-k", top_k=5, temperature=2.0))
    draws = torch.multinomial(probs, 5000, replacement=True, generator=torch.Generator().manual_seed(0))
    allowed = set(logits.topk(5).indices.tolist())
    assert set(draws.tolist()) == allowed  # every allowed token shows up, nothing else


# ---------------------------------------------------------------- cache equivalence
def test_cached_greedy_equals_uncached_past_the_context():
    model = tiny_gpt(context=32, scale=30.0)
    tok = ByteTokenizer()
    prompt = "Hello"
    settings = SamplingSettings(max_new_tokens=160)
    cached = Sampler(model, tok).generate_ids(prompt, settings)
    uncached = generate_uncached(model, tok.encode(prompt), 160, settings, eot_id=tok.eot_id)
    assert len(uncached) > 150
    assert cached == uncached


def test_prompt_longer_than_context_keeps_last_tokens():
    model = tiny_gpt(context=32, scale=30.0)
    tok = ByteTokenizer()
    prompt = "The quick brown fox jumps over the lazy dog, twice over."
    assert len(tok.encode(prompt)) > 32
    settings = SamplingSettings(max_new_tokens=40)
    cached = Sampler(model, tok).generate_ids(prompt, settings)
    assert cached == generate_uncached(model, tok.encode(prompt), 40, settings, eot_id=tok.eot_id)
    assert cached == Sampler(model, tok).generate_ids(prompt[-32:], settings)


def test_cached_logits_equal_full_forward(monkeypatch):
    """Every step's logits (incremental + sliding) match a full forward on the last context tokens."""
    model = tiny_gpt(context=32, scale=30.0)
    tok = ByteTokenizer()
    seen = []
    real_pick = sampling_mod._pick

    def spy(logits, settings, gen):
        seen.append(logits.clone())
        return real_pick(logits, settings, gen)

    monkeypatch.setattr(sampling_mod, "_pick", spy)
    prompt_ids = tok.encode("abc")
    new = Sampler(model, tok).generate_ids("abc", SamplingSettings(max_new_tokens=70))
    assert len(new) == 70 and len(seen) == 70
    seq = prompt_ids + new
    with torch.no_grad():
        for k, got in enumerate(seen):
            ctx = seq[: len(prompt_ids) + k][-32:]
            ref, _ = model(torch.tensor([ctx]))
            assert torch.allclose(got, ref[0, -1], atol=1e-5), f"step {k}"


@pytest.mark.parametrize(
    "settings",
    [
        SamplingSettings(strategy="temperature", temperature=1.0, seed=7, max_new_tokens=80),
        SamplingSettings(strategy="top-k", top_k=5, temperature=0.9, seed=8, max_new_tokens=80),
        SamplingSettings(strategy="top-p", top_p=0.8, seed=9, max_new_tokens=80),
        SamplingSettings(strategy="min-p", min_p=0.1, temperature=1.2, seed=10, max_new_tokens=80),
    ],
)
def test_seeded_sampling_cached_equals_uncached(settings):
    model = tiny_gpt(context=32, scale=3.0)
    tok = ByteTokenizer()
    cached = Sampler(model, tok).generate_ids("Hi", settings)
    assert cached == generate_uncached(model, tok.encode("Hi"), 80, settings, eot_id=tok.eot_id)


def test_top_k_never_emits_outside_k_best(monkeypatch):
    model = tiny_gpt(context=32, scale=3.0)
    tok = NoEotByteTokenizer()
    seen = []
    real_pick = sampling_mod._pick

    def spy(logits, settings, gen):
        t = real_pick(logits, settings, gen)
        seen.append((set(logits.topk(3).indices.tolist()), t))
        return t

    monkeypatch.setattr(sampling_mod, "_pick", spy)
    s = SamplingSettings(strategy="top-k", top_k=3, temperature=5.0, seed=1, max_new_tokens=100)
    Sampler(model, tok).generate_ids("x", s)
    assert len(seen) == 100
    assert all(t in best for best, t in seen)
    assert len({t for _, t in seen}) > 3  # high temperature really sampled


# ---------------------------------------------------------------- seeds & RNG
def test_seeds_reproduce_and_differ():
    model = tiny_gpt(scale=3.0)
    sampler = Sampler(model, ByteTokenizer())
    s = SamplingSettings(strategy="temperature", temperature=1.5, max_new_tokens=40, seed=123)
    a = sampler.generate_ids("Once", s)
    b = sampler.generate_ids("Once", s)
    c = sampler.generate_ids("Once", SamplingSettings(strategy="temperature", temperature=1.5, max_new_tokens=40, seed=124))
    assert a == b
    assert a != c
    assert sampler.last_seed == 124


def test_temperature_zero_equals_greedy():
    model = tiny_gpt(scale=30.0)
    sampler = Sampler(model, ByteTokenizer())
    greedy = sampler.generate_ids("abc", SamplingSettings(max_new_tokens=50))
    for s in (
        SamplingSettings(strategy="temperature", temperature=0.0, max_new_tokens=50),
        SamplingSettings(strategy="top-p", top_p=0.5, temperature=0.0, max_new_tokens=50, seed=3),
    ):
        assert sampler.generate_ids("abc", s) == greedy


def test_sampling_leaves_global_rng_and_weights_alone():
    model = tiny_gpt(scale=3.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    torch.manual_seed(42)
    rng = torch.get_rng_state()
    sampler = Sampler(model, ByteTokenizer())
    for s in (
        SamplingSettings(strategy="temperature", max_new_tokens=20),
        SamplingSettings(strategy="top-k", top_k=4, max_new_tokens=20, seed=5),
        SamplingSettings(max_new_tokens=20),
    ):
        sampler.generate("abc", s)
        sampler.next_token_distribution("abc", s)
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert grads == {n: p.requires_grad for n, p in model.named_parameters()}


def test_inference_mode_not_leaked_to_consumer():
    sampler = Sampler(tiny_gpt(), ByteTokenizer())
    it = sampler.stream("abc", SamplingSettings(max_new_tokens=5))
    next(it)
    assert not torch.is_inference_mode_enabled()
    x = torch.ones(2, requires_grad=True)
    (x * 2).sum().backward()  # autograd still works in the consumer
    list(it)


# ---------------------------------------------------------------- streaming text
def test_streaming_multibyte_split_over_byte_tokens():
    text = "héllo 🐉 世界 ok"
    events = stream_scripted(ByteTokenizer(), text)
    assert len([e for e in events if e.token_id >= 0]) == len(text.encode())
    assert all("\ufffd" not in e.text for e in events)
    assert "".join(e.text for e in events) == text
    # the dragon's 4 bytes: three empty deltas, then the whole character
    dragon = [e.text for e in events][7:11]
    assert dragon == ["", "", "", "🐉"]
    assert [e.index for e in events] == list(range(len(events)))


def test_incomplete_utf8_at_the_end_is_flushed_as_replacement():
    tok = ByteTokenizer()
    script = list("ok".encode()) + list("🐉".encode())[:2]
    model = ScriptedModel(257, script, 1, filler=256)
    events = list(Sampler(model, tok).stream("", SamplingSettings(max_new_tokens=4)))
    assert [e.text for e in events[:4]] == ["o", "k", "", ""]
    assert events[-1].token_id == TokenEvent.FLUSH and events[-1].text == "\ufffd"
    assert "".join(e.text for e in events) == tok.decode(script)


def test_eot_stops_without_emitting_it():
    tok = ByteTokenizer()
    model = ScriptedModel(257, list(b"ab") + [256] + list(b"cd"), 1)
    events = list(Sampler(model, tok).stream("", SamplingSettings(max_new_tokens=50)))
    assert [e.token_id for e in events] == list(b"ab")
    assert "".join(e.text for e in events) == "ab"


def test_empty_prompt_starts_from_eot_or_errors_for_char():
    tok = ByteTokenizer()
    model = ScriptedModel(257, list(b"hi"), 1, filler=256)
    assert Sampler(model, tok).generate("", SamplingSettings(max_new_tokens=10)) == "hi"
    char = CharTokenizer()
    sampler = Sampler(tiny_gpt(vocab=char.vocab_size), char)
    with pytest.raises(SamplingError, match="prompt is empty; the char tokenizer needs at least one character"):
        sampler.generate("", SamplingSettings())
    with pytest.raises(TokenizerError, match="'Z'"):
        sampler.generate("abZ", SamplingSettings())
    with pytest.raises(SamplingError, match="top_k"):  # settings checked when stream() is called
        sampler.stream("ab", SamplingSettings(strategy="top-k", top_k=0))


def test_stop_string_split_over_tokens():
    events = stream_scripted(ByteTokenizer(), "hello STOP world", stop="STOP")
    out = "".join(e.text for e in events)
    assert out == "hello "
    assert events[-1].token_id == ord("P")  # generation ended on the token completing the stop string
    assert all("S" not in e.text for e in events)


def test_stop_string_prefix_is_held_then_released():
    events = stream_scripted(ByteTokenizer(), "aS b STx", stop="STOP")
    assert [e.text for e in events] == ["a", "", "S ", "b", " ", "", "", "STx"]
    events = stream_scripted(ByteTokenizer(), "aS b ST", stop="STOP")
    assert [e.text for e in events][-3:] == ["", "", "ST"]  # held until the stream ended, then flushed
    assert events[-1].token_id == TokenEvent.FLUSH
    assert "".join(e.text for e in events) == "aS b ST"


def test_stop_string_with_multibyte_characters():
    events = stream_scripted(ByteTokenizer(), "dragão🐉 fim", stop="🐉")
    assert "".join(e.text for e in events) == "dragão"
    assert all("\ufffd" not in e.text for e in events)


def test_stop_at_the_very_start_gives_empty_text():
    events = stream_scripted(ByteTokenizer(), "\n\nabc", stop="\n")
    assert "".join(e.text for e in events) == ""
    assert len(events) == 1


def test_max_new_tokens_bounds_events():
    model = ScriptedModel(257, list(b"abcdefgh"), 1, filler=256)
    events = list(Sampler(model, ByteTokenizer()).stream("", SamplingSettings(max_new_tokens=3)))
    assert [e.text for e in events] == ["a", "b", "c"]
    assert model.calls == 3  # prefill + 2 steps: no forward pass for a token never used


def test_cancel_stops_immediately():
    sampler = Sampler(tiny_gpt(), ByteTokenizer())
    cancel = threading.Event()
    got = []
    for ev in sampler.stream("abc", SamplingSettings(max_new_tokens=100), cancel=cancel):
        got.append(ev)
        if len(got) == 3:
            cancel.set()
    assert [e.index for e in got if e.token_id != TokenEvent.FLUSH] == [0, 1, 2]
    cancel2 = threading.Event()
    cancel2.set()
    assert list(sampler.stream("abc", SamplingSettings(max_new_tokens=100), cancel=cancel2)) == []


def test_cancel_from_another_thread():
    sampler = Sampler(tiny_gpt(context=32), ByteTokenizer())
    cancel = threading.Event()
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    n = sum(1 for _ in sampler.stream("abc", SamplingSettings(max_new_tokens=1_000_000), cancel=cancel))
    timer.join()
    assert 0 < n < 1_000_000


# ---------------------------------------------------------------- distribution
def test_next_token_distribution_shapes_and_sums():
    model = tiny_gpt(scale=3.0)
    tok = ByteTokenizer()
    sampler = Sampler(model, tok)
    cands = sampler.next_token_distribution("abc", SamplingSettings(), top_n=10)
    assert len(cands) == 10 and all(isinstance(c, Candidate) for c in cands)
    probs = [c.prob for c in cands]
    assert probs == sorted(probs, reverse=True)
    assert sum(probs) <= 1.0 + 1e-6
    assert [c.filtered_prob for c in cands] == [1.0] + [0.0] * 9  # greedy: all mass on the argmax
    assert all(c.text == tok.token_text(c.token_id) for c in cands)

    with torch.no_grad():
        ref = torch.softmax(model(torch.tensor([tok.encode("abc")]))[0][0, -1], -1)
    assert cands[0].prob == pytest.approx(ref.max().item(), rel=1e-5)

    k = sampler.next_token_distribution("abc", SamplingSettings(strategy="top-k", top_k=4, temperature=0.7), top_n=10)
    assert sum(c.filtered_prob for c in k) == pytest.approx(1.0, abs=1e-5)
    assert sum(c.filtered_prob > 0 for c in k) == 4
    assert all(c.filtered_prob > 0 for c in k[:4])

    p = sampler.next_token_distribution("abc", SamplingSettings(strategy="top-p", top_p=0.05), top_n=20)
    kept = [c for c in p if c.filtered_prob > 0]
    assert kept and kept == p[: len(kept)]
    assert sum(c.filtered_prob for c in kept) == pytest.approx(1.0, abs=1e-5)
    mass_before_last = sum(c.prob for c in kept[:-1])
    assert mass_before_last < 0.05 <= sum(c.prob for c in kept) + 1e-6


def test_distribution_top_n_larger_than_vocab():
    char = CharTokenizer()
    sampler = Sampler(tiny_gpt(vocab=char.vocab_size), char)
    cands = sampler.next_token_distribution("ab", SamplingSettings(strategy="temperature"), top_n=50)
    assert len(cands) == char.vocab_size
    assert sum(c.prob for c in cands) == pytest.approx(1.0, abs=1e-5)
    assert sum(c.filtered_prob for c in cands) == pytest.approx(1.0, abs=1e-5)


def test_vocab_mismatch_is_a_clear_error():
    with pytest.raises(SamplingError, match="the tokenizer has 10 tokens but the model was built for 257"):
        Sampler(tiny_gpt(vocab=257), CharTokenizer())


# ---------------------------------------------------------------- real tokenizers
def _real_tokenizer(name, text=None):
    mod = pytest.importorskip("gptmini.text.tokenizer", reason="gptmini.tokenizer not available yet")
    try:
        return mod.build_tokenizer(name, text)
    except GPTMiniError as exc:  # e.g. GPT-2 vocabulary files unavailable
        pytest.skip(f"{name} tokenizer unavailable: {exc}")


def test_gpt2_unicode_prompt_round_trips_through_streaming():
    tok = _real_tokenizer("gpt2")
    text = "Era uma vez um dragão"
    events = stream_scripted(tok, text)
    assert all("\ufffd" not in e.text for e in events)
    assert "".join(e.text for e in events) == tok.decode(tok.encode(text)) == text


def test_gpt2_token_boundary_inside_a_character():
    tok = _real_tokenizer("gpt2")
    text = "dragão 🐉 龍 и 😀!"
    ids = tok.encode(text)
    # GPT-2's byte-level BPE really splits some character over several tokens here
    partial = []
    for i in ids:
        try:
            tok.decode_bytes([i]).decode("utf-8")
        except UnicodeDecodeError:
            partial.append(i)
    assert partial, "expected a token that holds only part of a UTF-8 character"
    events = stream_scripted(tok, text)
    assert all("\ufffd" not in e.text for e in events)
    assert any(e.text == "" for e in events)
    assert "".join(e.text for e in events) == tok.decode(ids) == text


def test_gpt2_random_model_stream_join_equals_decode():
    tok = _real_tokenizer("gpt2")
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, context_length=32, n_layers=1, n_heads=2, d_model=32)).eval()
    sampler = Sampler(model, tok)
    s = SamplingSettings(strategy="temperature", temperature=1.0, seed=0, max_new_tokens=30)
    events = list(sampler.stream("Era uma vez um dragão", s))
    ids = [e.token_id for e in events if e.token_id >= 0]
    ids = [i for i in ids if i != tok.eot_id]
    assert "".join(e.text for e in events) == tok.decode(ids)


def test_gpt2_empty_prompt_starts_from_endoftext():
    tok = _real_tokenizer("gpt2")
    sampler = Sampler(ScriptedModel(tok.vocab_size, tok.encode(" hello"), 1, filler=tok.eot_id), tok)
    assert sampler.encode_prompt("") == [tok.eot_id]
    assert sampler.generate("", SamplingSettings(max_new_tokens=10)) == " hello"


def test_char_tokenizer_unknown_character_message():
    tok = _real_tokenizer("char", "hello world")
    sampler = Sampler(tiny_gpt(vocab=tok.vocab_size), tok)
    with pytest.raises(TokenizerError) as info:
        sampler.generate("hello Z", SamplingSettings(max_new_tokens=3))
    assert "Z" in str(info.value)
    with pytest.raises(SamplingError, match="prompt is empty; the char tokenizer needs at least one character"):
        sampler.generate("", SamplingSettings())
    assert len(sampler.generate("hello", SamplingSettings(max_new_tokens=5))) <= 5

"""Text generation: sampling strategies, KV-cache streaming, next-token distribution.

The strategy math lives in one place, :func:`filter_logits`, used both to draw
tokens and to show the next-token distribution.

Generation is incremental: the prompt is pre-filled once into a preallocated
KV cache, then each new token is one forward pass of a single position.

Context window policy ("exact crop"). Every token is predicted from the last
``context_length`` tokens of prompt + generated text, exactly like the classic
uncached loop ``logits = model(ids[-context_length:])[-1]`` (nanoGPT, Raschka's
``generate``); :func:`generate_uncached` is that reference. Until the window is
full the cache makes each step cost one position. Once it is full, the window
slides by one token per step; because the model uses absolute position
embeddings every cached key/value changes position, so the cache is rebuilt
from the last ``context_length`` tokens (one forward of the full window) for
each further token. That costs what the uncached loop costs but keeps the
output identical to it; keeping only half the window would be cheaper but
would change what the model sees.
"""

from __future__ import annotations

import codecs
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from gptmini.errors import SamplingError
from gptmini.sample.settings import STRATEGIES, Candidate, SamplingSettings
from gptmini.sample.strategies import Space

__all__ = ["STRATEGIES", "Candidate", "SamplingSettings", "Sampler", "TokenEvent", "filter_logits",
           "generate_uncached", "make_generator"]


# ----------------------------------------------------------------- strategy math
def filter_logits(logits: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """Turn logits ``(..., vocab)`` into the probabilities the strategy samples from.

    Greedy (or ``T = 0``) gives a one-hot on the argmax. Otherwise: divide by
    ``T``, then apply the keep function of each knob the strategy reads, in its
    order (:mod:`gptmini.sample.strategies`): those on logits set removed tokens
    to ``-inf`` before the softmax (top-k keeps exactly ``k``; ties at the
    boundary are broken by index), those on probabilities set them to 0 after
    it and renormalise (top-p, min-p). Removed tokens get probability exactly 0.
    Returns float32 on the logits' device.
    """
    logits = torch.as_tensor(logits).float()
    if settings.is_greedy:
        out = torch.zeros_like(logits)
        return out.scatter_(-1, logits.argmax(dim=-1, keepdim=True), 1.0)

    # Subtract the max before dividing so tiny temperatures give -inf, never NaN.
    scaled = (logits - logits.amax(dim=-1, keepdim=True)) / settings.temperature
    probs = None
    for knob, value in settings.knob_values():
        if knob.keep is None:
            continue  # temperature: applied above
        if knob.space is Space.LOGITS:  # the registry puts these before any on probabilities
            keep = knob.keep(scaled, value)
            if keep is not None:
                scaled = scaled.masked_fill(~keep, float("-inf"))
            continue
        if probs is None:
            probs = torch.softmax(scaled, dim=-1)
        keep = knob.keep(probs, value)
        if keep is not None:
            probs = probs.masked_fill(~keep, 0.0)
            probs = probs / probs.sum(dim=-1, keepdim=True)
    return torch.softmax(scaled, dim=-1) if probs is None else probs


def _pick(logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator | None) -> int:
    """Choose one token id from 1-D logits."""
    if settings.is_greedy:
        return int(logits.argmax())
    probs = filter_logits(logits, settings)
    return int(torch.multinomial(probs, 1, generator=generator))


def make_generator(seed: int | None, device: torch.device | str) -> torch.Generator:
    """A private RNG for sampling (never touches the global / training RNG)."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()  # non-deterministic, from the OS
    else:
        gen.manual_seed(int(seed))
    return gen


def generate_uncached(
    model: Any,
    ids: Sequence[int],
    n: int,
    settings: SamplingSettings,
    eot_id: int | None = None,
) -> list[int]:
    """Reference generator without a KV cache: re-runs the whole (cropped) context per token.

    Each token is predicted from ``ids[-context_length:]``. Uses the same
    strategy math and the same seeded generator as :class:`Sampler`, so with a
    seed both give the same tokens. Returns only the new ids (stops before
    ``eot_id`` when given).
    """
    if not ids:
        raise SamplingError("generate_uncached needs at least one prompt token")
    device = next(model.parameters()).device
    ctx = model.config.context_length
    gen = None if settings.is_greedy else make_generator(settings.seed, device)
    seq = list(ids)
    new: list[int] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for _ in range(n):
                window = torch.tensor([seq[-ctx:]], dtype=torch.long, device=device)
                logits, _ = model(window, last_only=True)
                tok = _pick(logits[0, -1], settings, gen)
                if eot_id is not None and tok == eot_id:
                    break
                seq.append(tok)
                new.append(tok)
    finally:
        model.train(was_training)
    return new


# --------------------------------------------------------------------- streaming
@dataclass
class TokenEvent:
    """One generated token.

    ``text`` is the newly printable text: it may be ``""`` while a UTF-8
    character is incomplete or while text that could start the stop string is
    held back. A final event with ``token_id == FLUSH`` (-1) carries held-back
    text at the end of a stream (no new token); it is only sent when non-empty.
    """

    token_id: int
    text: str
    index: int

    FLUSH = -1


class _TextStream:
    """Bytes of generated tokens in, printable text deltas out.

    Feeds each token's bytes through an incremental UTF-8 decoder (so a
    character split over several tokens appears only once complete) and holds
    back any tail that could be the beginning of the stop string.
    """

    def __init__(self, tokenizer: Any, stop: str | None):
        self._tok = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = stop
        self.text = ""  # everything decoded so far
        self.emitted = 0  # len of self.text already handed out
        self.stopped = False

    def push(self, token_id: int) -> str:
        self.text += self._decoder.decode(self._tok.decode_bytes([token_id]), final=False)
        return self._release(final=False)

    def finish(self) -> str:
        if not self.stopped:
            self.text += self._decoder.decode(b"", final=True)
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        if self.stopped:
            return ""
        stop = self._stop
        end = len(self.text)
        if stop:
            at = self.text.find(stop, max(0, self.emitted - len(stop)))
            if at >= 0:
                self.stopped = True
                end = at
            elif not final:
                end -= _held_back(self.text, stop, self.emitted)
        delta = self.text[self.emitted : end]
        self.emitted = max(self.emitted, end)
        return delta


def _held_back(text: str, stop: str, start: int) -> int:
    """Length of the longest suffix of ``text[start:]`` that is a proper prefix of ``stop``."""
    longest = min(len(stop) - 1, len(text) - start)
    for n in range(longest, 0, -1):
        if stop.startswith(text[-n:]):
            return n
    return 0


# ----------------------------------------------------------------------- sampler
class Sampler:
    """Generate text from a model + tokenizer.

    Uses the given model as-is (the engine hands out its own copy); calls
    ``model.eval()`` and runs every forward under ``torch.inference_mode()``
    (entered per step, never held across a ``yield``). ``device`` moves the
    model there when given; otherwise the model's own device is used.
    Draws use a private ``torch.Generator``, so the global RNG is untouched.
    """

    def __init__(self, model: Any, tokenizer: Any, device: str | torch.device | None = None):
        if device is not None:
            model = model.to(device)
        self.model = model
        self.model.eval()
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.vocab_size = model.config.vocab_size
        self.context_length = model.config.context_length
        tv = getattr(tokenizer, "vocab_size", None)
        if tv is not None and tv != self.vocab_size:
            raise SamplingError(
                f"the tokenizer has {tv} tokens but the model was built for {self.vocab_size}; "
                "load both from the same checkpoint"
            )
        self.last_seed: int | None = None  # seed of the most recent stream (reproduce with it)

    # ----------------------------------------------------------- prompt
    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids the model is conditioned on (at most the last ``context_length``)."""
        if not isinstance(prompt, str):
            raise SamplingError(f"prompt must be text, got {type(prompt).__name__}")
        if prompt == "":
            eot = getattr(self.tokenizer, "eot_id", None)
            if eot is None:
                raise SamplingError(
                    f"prompt is empty; the {getattr(self.tokenizer, 'name', 'char')} tokenizer "
                    "needs at least one character"
                )
            return [eot]
        ids = list(self.tokenizer.encode(prompt))  # TokenizerError for unknown characters
        if not ids:
            raise SamplingError("the prompt encodes to no tokens")
        return ids[-self.context_length :]

    # ----------------------------------------------------------- generation
    def stream(
        self,
        prompt: str,
        settings: SamplingSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[TokenEvent]:
        """Yield :class:`TokenEvent` s as tokens are generated.

        Stops after ``max_new_tokens``, at the end-of-text token (not emitted),
        when the stop string appears (text before it is emitted, the stop
        string is not), or as soon as ``cancel`` is set (checked before each
        token). Settings and prompt are checked before anything is yielded.
        """
        settings.validate(self.vocab_size)
        ids = self.encode_prompt(prompt)
        return self._stream(ids, settings, cancel)

    def stream_ids(
        self,
        ids: Sequence[int],
        settings: SamplingSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[TokenEvent]:
        """Like :meth:`stream` but from token ids (cropped to the context)."""
        settings.validate(self.vocab_size)
        ids = [int(i) for i in ids]
        if not ids:
            raise SamplingError("the prompt has no tokens")
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise SamplingError(f"token id {bad[0]} is outside the vocabulary (0..{self.vocab_size - 1})")
        return self._stream(ids[-self.context_length :], settings, cancel)

    def _stream(
        self, ids: list[int], settings: SamplingSettings, cancel: threading.Event | None
    ) -> Iterator[TokenEvent]:
        model = self.model
        ctx = self.context_length
        eot = getattr(self.tokenizer, "eot_id", None)
        gen = None
        if not settings.is_greedy:
            gen = make_generator(settings.seed, self.device)
            self.last_seed = gen.initial_seed()
        else:
            self.last_seed = settings.seed
        text = _TextStream(self.tokenizer, settings.stop)
        seq = list(ids)  # prompt (cropped) + generated; only the last ctx are ever used
        n_max = settings.max_new_tokens

        if cancel is not None and cancel.is_set():
            return
        cache = model.new_cache(1)
        step_idx = torch.zeros((1, 1), dtype=torch.long, device=self.device)
        with torch.inference_mode():
            logits, _ = model(torch.tensor([seq], dtype=torch.long, device=self.device), cache=cache, last_only=True)
            tok = _pick(logits[0, -1], settings, gen)
        if cancel is not None and cancel.is_set():
            return

        index = 0
        while True:
            if eot is not None and tok == eot:
                break
            seq.append(tok)
            delta = text.push(tok)
            yield TokenEvent(tok, delta, index)
            index += 1
            if text.stopped or index >= n_max:
                break
            if cancel is not None and cancel.is_set():
                break
            with torch.inference_mode():
                if cache.pos < ctx:
                    step_idx[0, 0] = tok
                    logits, _ = model(step_idx, cache=cache, last_only=True)
                else:  # window full: slide by one and recompute it (see module docstring)
                    if len(seq) > 2 * ctx:
                        del seq[: len(seq) - ctx]
                    cache.reset()
                    window = torch.tensor([seq[-ctx:]], dtype=torch.long, device=self.device)
                    logits, _ = model(window, cache=cache, last_only=True)
                tok = _pick(logits[0, -1], settings, gen)
            if cancel is not None and cancel.is_set():
                break

        rest = text.finish()
        if rest:
            yield TokenEvent(TokenEvent.FLUSH, rest, index)

    def generate(self, prompt: str, settings: SamplingSettings, cancel: threading.Event | None = None) -> str:
        """The generated text (without the prompt), as :meth:`stream` would print it."""
        return "".join(ev.text for ev in self.stream(prompt, settings, cancel))

    def generate_ids(
        self, prompt: str, settings: SamplingSettings, cancel: threading.Event | None = None
    ) -> list[int]:
        """The generated token ids (without the prompt)."""
        return [ev.token_id for ev in self.stream(prompt, settings, cancel) if ev.token_id != TokenEvent.FLUSH]

    # ---------------------------------------------------------- distribution
    def next_token_distribution(self, prompt: str, settings: SamplingSettings, top_n: int = 10) -> list[Candidate]:
        """The ``top_n`` most probable next tokens after ``prompt``, most probable first."""
        settings.validate(self.vocab_size)
        return self.distribution_from_ids(self.encode_prompt(prompt), settings, top_n)

    def distribution_from_ids(self, ids: Sequence[int], settings: SamplingSettings, top_n: int = 10) -> list[Candidate]:
        """Like :meth:`next_token_distribution` but from token ids."""
        settings.validate(self.vocab_size)
        if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
            raise SamplingError(f"top_n must be a whole number >= 1, got {top_n!r}")
        ids = [int(i) for i in ids][-self.context_length :]
        if not ids:
            raise SamplingError("the prompt has no tokens")
        with torch.inference_mode():
            logits, _ = self.model(torch.tensor([ids], dtype=torch.long, device=self.device), last_only=True)
            logits = logits[0, -1].float()
            raw = torch.softmax(logits, dim=-1)
            filtered = filter_logits(logits, settings)
            n = min(top_n, raw.shape[-1])
            top = raw.topk(n)
            rows = list(zip(top.indices.tolist(), top.values.tolist(), filtered[top.indices].tolist()))
        return [Candidate(i, self.tokenizer.token_text(i), p, fp) for i, p, fp in rows]

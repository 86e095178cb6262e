"""Pre-training (the book's chapter 5): next-token prediction on windows of a corpus.

The corpus is tokenised once into the token cache (``data.tokens``), split by position (the last
``--val-fraction`` of the tokens is validation), and cut into windows of ``context + 1`` tokens
(``data.windows``): ``x = w[:-1]``, ``y = w[1:]``, every target counts. After each evaluation the model
continues a prompt greedily.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gptmini import events as ev
from gptmini.data.batch import Batch
from gptmini.data.tokens import TokenData, TokenisingProgress, tokenize_corpus
from gptmini.data.windows import Batches, check_fits, eval_batches
from gptmini.errors import GPTMiniError
from gptmini.sample.sampler import Sampler, SamplingSettings
from gptmini.tasks.base import DataSummary, Emit, EvalResult, Task, mean_loss
from gptmini.text.corpus import Corpus, load_corpus

if TYPE_CHECKING:
    from gptmini.text.tokenizer import Tokenizer
    from gptmini.train.device import DeviceChoice
    from gptmini.train_config import TrainConfig


class WindowBatches:
    """``data.windows.Batches`` as the engine takes them: ``Batch`` objects whose every target counts."""

    def __init__(self, windows: Batches) -> None:
        self.windows = windows
        self.batches_per_epoch = windows.batches_per_epoch
        self.same_shape = True

    def epoch_batches(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        for x, y in self.windows.epoch_batches(epoch, start_batch):
            yield Batch(x, y, y.numel())


class PretrainTask(Task):
    name = "pretrain"

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.corpus: Corpus | None = None
        self.token_data: TokenData | None = None
        self.val_set: list[Batch] = []
        self.train_eval_set: list[Batch] = []
        self._sample_prompt: str | None = None
        self._prompt_warning: str | None = None

    def load(self, tokenizer: Tokenizer | str, emit: Emit, resume_dir: Path | None = None) -> Tokenizer:
        cfg = self.config
        self.corpus = corpus = load_corpus(cfg.data, cfg.corpus)
        progress = TokenisingProgress(emit, corpus, getattr(tokenizer, "name", tokenizer))
        self.tokenizer, self.token_data = tokenize_corpus(corpus, tokenizer, val_fraction=cfg.val_fraction,
                                                          progress=progress, warn=progress.warn)
        progress.finish(self.token_data)
        self.summary = DataSummary(name=corpus.name, n_bytes=corpus.n_bytes, train_tokens=len(self.token_data.train),
                                   val_tokens=len(self.token_data.val))
        self._sample_prompt, self._prompt_warning = pick_sample_prompt(
            cfg.sample_prompt, self.tokenizer, corpus.name, self.tokenizer.decode(list(self.token_data.val[:2000])))
        if self._prompt_warning:
            emit(ev.Warning(message=self._prompt_warning, step=0))
        return self.tokenizer

    def prepare(self, context_length: int, batch_size: int, *, seed: int, rank: int, world_size: int) -> WindowBatches:
        cfg, tokens = self.config, self.token_data
        check_fits(tokens, context_length, batch_size)
        windows = Batches(tokens.train, context_length, batch_size, stride=cfg.stride, seed=seed, rank=rank,
                          world_size=world_size)
        self.val_set = _as_batches(eval_batches(tokens.val, context_length, batch_size, cfg.eval_batches))
        self.train_eval_set = _as_batches(eval_batches(tokens.train, context_length, batch_size, cfg.eval_batches))
        return WindowBatches(windows)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: torch.device, precision: DeviceChoice) -> EvalResult:
        return EvalResult(val_loss=mean_loss(model, self.val_set, device, precision),
                          train_loss=mean_loss(model, self.train_eval_set, device, precision))

    def samples(self, model: torch.nn.Module, step: int) -> list[ev.Event]:
        if self._sample_prompt is None:
            return []
        text, problem = greedy_sample(model, self.tokenizer, self._sample_prompt, self.config.sample_tokens)
        if problem is not None:
            return [ev.Warning(message=problem, step=step)]
        return [ev.Sample(step=step, prompt=self._sample_prompt, text=text)]

    @property
    def sample_prompt(self) -> str | None:
        return self._sample_prompt


def _as_batches(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[Batch]:
    return [Batch(x, y, y.numel()) for x, y in pairs]


def greedy_sample(model: torch.nn.Module, tokenizer: Any, prompt: str, max_new_tokens: int) -> tuple[str | None, str | None]:
    """The greedy continuation of ``prompt`` printed after an evaluation, or (None, why it was skipped).
    Leaves the model in train mode."""
    try:
        return Sampler(model, tokenizer).generate(
            prompt, SamplingSettings(strategy="greedy", max_new_tokens=max_new_tokens)), None
    except GPTMiniError as exc:
        return None, f"sample skipped: {exc}"
    finally:
        model.train()


RASCHKA_PROMPT = "Every effort moves you"  # the book's start context, for its corpus


def pick_sample_prompt(asked: str | None, tokenizer: Any, corpus: str, val_text: str) -> tuple[str | None, str | None]:
    """The prompt of the sample after each evaluation, and a warning when ``--sample-prompt`` is unusable.

    ``--sample-prompt`` if given; for the-verdict Raschka's "Every effort moves you"; otherwise the start of
    a line of the validation text (words of the corpus itself, not a prompt written for another book).
    """
    if asked:
        try:
            tokenizer.encode(asked)
        except GPTMiniError as exc:
            return None, f"--sample-prompt cannot be used: {exc}"
        return asked, None
    if corpus == "the-verdict":
        return RASCHKA_PROMPT, None
    return line_start(val_text) or "The ", None


def line_start(text: str, max_words: int = 3, max_chars: int = 24) -> str | None:
    """The first words of the first full line of ``text`` that starts with a letter (None: no such line)."""
    for line in text.split("\n")[1:]:  # the first piece may start mid-line
        line = line.strip()
        if line[:1].isalpha():
            words, out = line.split()[:max_words], ""
            for word in words:
                if len(out) + len(word) + 1 > max_chars and out:
                    break
                out = f"{out} {word}" if out else word
            return out
    return None

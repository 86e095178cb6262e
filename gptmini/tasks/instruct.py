"""Instruction fine-tuning (the book's chapter 7): a model learns to answer instructions.

The data is one JSON/JSONL file of instruction/input/output (or prompt/completion) records, split 85 / 10
/ 5 % (train / test / validation) by the run's seed, or given as files (``--val-data``, ``--test-data``).
The split is written into the run folder (``split.json``) so that a resume and ``gptmini respond`` use the
same examples. Examples are formatted with a prompt style (``data.prompts``), padded per batch as the book
does, and shuffled by example every epoch. After each evaluation the model answers a few fixed
validation instructions, shown beside their reference answers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gptmini import events as ev
from gptmini.data.batch import Batch
from gptmini.data.instructions import (
    SPLIT_FRACTIONS,
    Example,
    ExampleBatches,
    Record,
    collate,
    end_marker,
    fit_to_context,
    read_records,
    tokenize_examples,
)
from gptmini.data.named import data_file
from gptmini.data.prompts import DEFAULT_STYLE, PROMPT_STYLES, PromptStyle, prompt_style
from gptmini.data.splits import (
    SPLIT_FILE,
    check_split,
    make_split,
    read_split,
    split_digest,
)
from gptmini.errors import CorpusError, GPTMiniError
from gptmini.tasks.base import DataSummary, Emit, EvalResult, Task, mean_loss
from gptmini.text.corpus import DOC_SEPARATOR

if TYPE_CHECKING:
    from gptmini.sample.settings import SamplingSettings
    from gptmini.text.tokenizer import Tokenizer
    from gptmini.train.device import DeviceChoice
    from gptmini.train_config import TrainConfig

SAMPLE_EXAMPLES = 3  # validation examples answered after each evaluation


class InstructTask(Task):
    name = "instruct"

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.style: PromptStyle = prompt_style(config.template or DEFAULT_STYLE)
        self.records: dict[str, list[Record]] = {}  # split -> its records, in split order
        self.split: dict[str, Any] = {}  # what split.json holds
        self.examples: dict[str, list[Example]] = {}
        self.val_set: list[Batch] = []
        self.train_eval_set: list[Batch] = []
        self.pad_id = 0
        self._emit: Emit = lambda event: None

    # ------------------------------------------------------------------ data
    def load(self, tokenizer: Tokenizer | str, emit: Emit, resume_dir: Path | None = None) -> Tokenizer:
        cfg = self.config
        self._emit = emit
        paths = {"train": data_file(cfg.data, task=self.name, kind="instructions"), "val": cfg.val_data,
                 "test": cfg.test_data}
        records = {name: read_records(p) if p else None for name, p in paths.items()}
        saved = read_split(resume_dir) if resume_dir is not None else None
        self.split = saved or make_split(paths, {k: len(v) for k, v in records.items() if v is not None}, cfg.seed,
                                         SPLIT_FRACTIONS)
        check_split(self.split, paths)
        for name in ("train", "val", "test"):
            part = self.split[name]
            source = records[name] if part["file"] != "train" else records["train"]
            self.records[name] = [source[i] for i in part["indices"]]
        if not self.records["val"]:
            raise CorpusError(f"{paths['train']} has {len(records['train'])} records: too few for a validation "
                              f"split (5 %); add records or pass --val-data FILE")
        if not self.config.template and all("prompt" in r.source for r in self.records["train"]):
            self.style = PROMPT_STYLES["raw"]  # prompt/completion data carries its own prompts
        self.tokenizer = tok = _tokenizer_for(tokenizer, self.records, self.style)
        self.pad_id = end_marker(tok)[-1]
        where = str(paths["train"])
        self.examples = {name: tokenize_examples(recs, list(range(len(recs))), tok, self.style, where)
                         for name, recs in self.records.items()}
        train_tokens = sum(len(e.ids) for e in self.examples["train"])
        self.summary = DataSummary(
            name=Path(paths["train"]).name, n_bytes=Path(paths["train"]).stat().st_size, train_tokens=train_tokens,
            val_tokens=sum(len(e.ids) for e in self.examples["val"]),
            extra={"template": self.style.name, **{f"{k}_examples": len(v) for k, v in self.examples.items()}})
        return tok

    def run_files(self) -> dict[str, Any]:
        return {SPLIT_FILE: self.split}

    # --------------------------------------------------------------- batches
    def prepare(self, context_length: int, batch_size: int, *, seed: int, rank: int, world_size: int) -> ExampleBatches:
        cfg = self.config
        fitted = {name: fit_to_context(examples, context_length) for name, examples in self.examples.items()}
        train = fitted["train"]
        if not train.examples:
            raise CorpusError(f"every training example's prompt is longer than the context ({context_length} "
                              f"tokens); use a longer --context (the model's limit) or shorter instructions")
        cut, dropped = sum(f.cut for f in fitted.values()), sum(f.dropped for f in fitted.values())
        if cut or dropped:
            self._emit(ev.Warning(message=f"{cut} examples were cut to the context of {context_length} tokens and "
                                          f"{dropped} dropped (their prompt alone fills it)", step=0))
        batches = ExampleBatches(train.examples, batch_size, pad_id=self.pad_id, mask_prompt=cfg.mask_prompt,
                                 seed=seed, rank=rank, world_size=world_size)
        if batches.batches_per_epoch == 0:
            per = len(train.examples) // world_size
            raise CorpusError(f"the train split has {len(train.examples)} examples ({per} per process): fewer than "
                              f"the batch size {batch_size}; use --batch-size {max(per, 1)} or less, or more data")
        self.val_set = self._eval_batches(fitted["val"].examples, batch_size)
        self.train_eval_set = self._eval_batches(train.examples, batch_size)
        return batches

    def _eval_batches(self, examples: list[Example], batch_size: int) -> list[Batch]:
        """The first ``--eval-batches`` batches of a split, in split order (the book evaluates 5 batches)."""
        chunks = [examples[i:i + batch_size] for i in range(0, len(examples), batch_size)][: self.config.eval_batches]
        return [Batch(*collate(chunk, self.pad_id, self.config.mask_prompt)) for chunk in chunks]

    # ------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: torch.device, precision: DeviceChoice) -> EvalResult:
        return EvalResult(val_loss=mean_loss(model, self.val_set, device, precision),
                          train_loss=mean_loss(model, self.train_eval_set, device, precision))

    def samples(self, model: torch.nn.Module, step: int) -> list[ev.Event]:
        shown = self.records["val"][:SAMPLE_EXAMPLES]
        try:
            replies = answers(model, self.tokenizer, [self.style.prompt(r.instruction, r.input) for r in shown],
                              self.config.sample_tokens)
        except GPTMiniError as exc:
            return [ev.Warning(message=f"sample skipped: {exc}", step=step)]
        finally:
            model.train()
        return [ev.Sample(step=step, prompt=rec.instruction + (f"\n{rec.input}" if rec.input else ""), text=reply,
                          reference=rec.output) for rec, reply in zip(shown, replies)]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "template": self.style.name, "mask_prompt": bool(self.config.mask_prompt),
                "split_sha256": split_digest(self.split)}

    @property
    def sample_prompt(self) -> str | None:
        return self.records["val"][0].instruction if self.records.get("val") else None


def answers(model: torch.nn.Module, tokenizer: Tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """The model's greedy answers to formatted prompts, generated together (one batch through one KV cache),
    each up to its end marker."""
    from gptmini.sample.batch import generate_batch
    from gptmini.sample.settings import SamplingSettings

    ids = [tokenizer.encode(p)[-model.config.context_length:] for p in prompts]
    done = generate_batch(model, ids, SamplingSettings(strategy="greedy", max_new_tokens=max_new_tokens),
                          end=end_marker(tokenizer))
    return [tokenizer.decode(g.ids).strip() for g in done]


def respond(model: torch.nn.Module, tokenizer: Tokenizer, prompt: str, max_new_tokens: int) -> str:
    """The model's greedy answer to a formatted prompt, up to its end marker."""
    from gptmini.sample.sampler import Sampler
    from gptmini.sample.settings import SamplingSettings

    settings = answer_settings(tokenizer, SamplingSettings(strategy="greedy", max_new_tokens=max_new_tokens))
    return Sampler(model, tokenizer).generate(prompt, settings).strip()


def answer_settings(tokenizer: Tokenizer, settings: SamplingSettings) -> SamplingSettings:
    """``settings`` that end an answer at the end marker the examples were trained with: the sampler stops at
    end-of-text by itself; a tokenizer without one (char) stops at the blank line (``end_marker``)."""
    if tokenizer.eot_id is not None:
        return settings
    return dataclasses.replace(settings, stop=DOC_SEPARATOR)


def _tokenizer_for(wanted: Tokenizer | str, records: dict[str, list[Record]], style: PromptStyle) -> Tokenizer:
    """The run's tokenizer: one already built (the model's own), or a name (a char vocabulary from the data
    and the prompt style's own text)."""
    if not isinstance(wanted, str):
        return wanted
    from gptmini.text.tokenizer import build_tokenizer

    texts = [t for recs in records.values() for r in recs for t in (r.instruction, r.input, r.output)]
    texts += [style.head, style.input_head, style.response_head, DOC_SEPARATOR]
    return build_tokenizer(wanted, texts if wanted == "char" else None)

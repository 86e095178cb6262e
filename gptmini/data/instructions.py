"""Instruction data: records read and checked, split, tokenised into examples, and padded into batches as
the book's chapter 7 does.

A file is a JSON list or JSON Lines of records with ``instruction``, an optional ``input`` and ``output``
(the book's and Alpaca's format), or with ``prompt`` and ``completion``. Every problem is one
``CorpusError`` naming the place: the line and column of malformed JSON, the record and its field.

An example is the prompt (a ``PromptStyle`` applied to the instruction and input) followed by the output
and an end marker (``<|endoftext|>``; a tokenizer without one ends with a blank line). A batch is padded to
its longest example: the first end marker stays a target (the model learns to stop), the padding after
it is ``IGNORE_INDEX``, and with ``mask_prompt`` so are the targets inside the prompt.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gptmini.data.batch import IGNORE_INDEX, Batch
from gptmini.data.named import read_text_file
from gptmini.data.prompts import PromptStyle
from gptmini.errors import CorpusError, TokenizerError
from gptmini.text.corpus import DOC_SEPARATOR

if TYPE_CHECKING:
    import torch

    from gptmini.text.tokenizer import Tokenizer

# train, test, and the rest validation: the book's 935 / 110 / 55 of 1,100 (data.splits)
SPLIT_FRACTIONS: dict[str, float | None] = {"train": 0.85, "test": 0.10, "val": None}


@dataclass(frozen=True)
class Record:
    instruction: str
    input: str
    output: str
    source: dict[str, Any] = field(repr=False, compare=False)  # the record as read (respond writes it back)


def read_records(path: str | Path) -> list[Record]:
    """Every record of ``path`` (a JSON list, or one JSON object per line), checked."""
    path = Path(path).expanduser()
    text = read_text_file(path, "instruction data is one .json or .jsonl file")
    items = _json_items(path, text)
    if not items:
        raise CorpusError(f"{path} holds no records")
    return [_record(path, i, line, item) for i, (line, item) in enumerate(items)]


def _json_items(path: Path, text: str) -> list[tuple[int | None, Any]]:
    """``(line, value)`` of each record: a JSON list's items (line None), or each JSON Lines line's object."""
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path} is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        return [(None, item) for item in data]
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path} is not valid JSON Lines at line {number}, column {exc.colno}: "
                              f"{exc.msg}") from None
    return items


def _record(path: Path, index: int, line: int | None, item: Any) -> Record:
    where = f"{path}: record {index + 1}" + (f" (line {line})" if line is not None else "")
    if not isinstance(item, dict):
        raise CorpusError(f"{where} is {type(item).__name__}, not an object with instruction/output fields")
    if "instruction" in item or "output" in item:
        fields, optional = ("instruction", "output"), ("input",)
    elif "prompt" in item or "completion" in item:
        fields, optional = ("prompt", "completion"), ()
    else:
        raise CorpusError(f"{where} has neither instruction/output nor prompt/completion fields "
                          f"(it has {', '.join(map(repr, item)) or 'none'})")
    for name in fields + optional:
        value = item.get(name, "" if name in optional else None)
        if value is None and name in optional:
            continue
        if name not in item and name not in optional:
            raise CorpusError(f"{where} lacks the field {name!r}")
        if not isinstance(value, str):
            raise CorpusError(f"{where}: {name!r} is {type(value).__name__}, not text")
    if "prompt" in fields:
        return Record(item["prompt"], "", item["completion"], item)
    return Record(item["instruction"], item.get("input") or "", item["output"], item)


# -- examples and batches --------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One record tokenised: ``ids`` is prompt, output and end marker; the first ``n_prompt`` ids are the prompt."""

    ids: np.ndarray = field(repr=False)
    n_prompt: int
    index: int  # the record's position in its file


def end_marker(tokenizer: Tokenizer) -> list[int]:
    """The ids that end a response: end-of-text, or a blank line for a tokenizer without one (char)."""
    if tokenizer.eot_id is not None:
        return [tokenizer.eot_id]
    return tokenizer.encode(DOC_SEPARATOR)


def tokenize_examples(records: list[Record], indices: list[int], tokenizer: Tokenizer, style: PromptStyle,
                      where: str) -> list[Example]:
    """The records at ``indices`` as examples (the whole text is tokenised at once, as the book does)."""
    end = end_marker(tokenizer)
    out = []
    for i in indices:
        rec = records[i]
        prompt = style.prompt(rec.instruction, rec.input)
        try:
            ids = tokenizer.encode(prompt + rec.output) + end
            n_prompt = len(tokenizer.encode(prompt))
        except TokenizerError as exc:
            raise CorpusError(f"{where}: record {i + 1}: {exc}") from None
        out.append(Example(np.asarray(ids, dtype=np.int64), n_prompt, i))
    return out


@dataclass(frozen=True)
class Fitted:
    examples: list[Example]
    cut: int  # examples cut to the context (their end marker, and maybe the end of the output, lost)
    dropped: int  # examples whose prompt alone fills the context: nothing left to learn


def fit_to_context(examples: list[Example], context_length: int) -> Fitted:
    """Examples cut to ``context + 1`` ids (inputs and targets of at most the context), as the book's
    ``allowed_max_length``; those whose prompt alone fills the context are dropped."""
    keep, cut, dropped = [], 0, 0
    for ex in examples:
        if ex.n_prompt >= context_length:
            dropped += 1
        elif len(ex.ids) > context_length + 1:
            keep.append(Example(ex.ids[: context_length + 1], ex.n_prompt, ex.index))
            cut += 1
        else:
            keep.append(ex)
    return Fitted(keep, cut, dropped)


def collate(examples: list[Example], pad_id: int, mask_prompt: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(x, y, n_targets)`` of examples padded to the longest: the book's ``custom_collate_fn``."""
    import torch

    width = max(len(ex.ids) for ex in examples) - 1
    x = np.full((len(examples), width), pad_id, dtype=np.int64)
    y = np.full((len(examples), width), IGNORE_INDEX, dtype=np.int64)
    for row, ex in enumerate(examples):
        n = len(ex.ids) - 1
        x[row, :n] = ex.ids[:-1]
        y[row, :n] = ex.ids[1:]
        if mask_prompt:
            y[row, : ex.n_prompt - 1] = IGNORE_INDEX  # the targets that are prompt tokens
    return torch.from_numpy(x), torch.from_numpy(y), int((y != IGNORE_INDEX).sum())


class ExampleBatches:
    """Training batches of examples: every epoch a permutation of the examples by ``(seed, epoch)`` (the same
    on every rank), cut to a multiple of the processes, rank ``r`` taking ``perm[r::world_size]``; incomplete
    batches are dropped (the book's ``drop_last``)."""

    def __init__(self, examples: list[Example], batch_size: int, *, pad_id: int, mask_prompt: bool, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        self.examples = examples
        self.batch_size = batch_size
        self.pad_id = pad_id
        self.mask_prompt = mask_prompt
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.batches_per_epoch = len(examples) // world_size // batch_size
        self.same_shape = False  # each batch is as long as its longest example

    def epoch_order(self, epoch: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, int(epoch)]).permutation(len(self.examples))
        return order[: len(order) // self.world_size * self.world_size][self.rank :: self.world_size]

    def epoch_batches(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        mine, b = self.epoch_order(epoch), self.batch_size
        for i in range(start_batch, self.batches_per_epoch):
            x, y, n = collate([self.examples[j] for j in mine[i * b : (i + 1) * b]], self.pad_id, self.mask_prompt)
            yield Batch(x, y, n)

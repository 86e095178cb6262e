"""Classification fine-tuning (the book's chapter 6): the model's head is replaced by one that scores the
labels, and it learns which label a text has (spam or not).

The data is a CSV, TSV or JSONL file of labelled texts (``data.labelled``), optionally balanced to the
smallest class, split 70 / 10 / 20 % (train / validation / test) by the run's seed or given as files, the
split written into the run folder. Texts are padded with end-of-text to the longest training text (the
book's) or per batch; the loss and the prediction come from each text's last real token. By default only
the last transformer block, the final norm and the new head train (``--train-layers all``: everything, or
LoRA's adapters and the head). Accuracy is measured beside the loss at each evaluation, and on the test
split when the run completes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gptmini import events as ev
from gptmini.data.batch import IGNORE_INDEX, Batch
from gptmini.data.instructions import end_marker
from gptmini.data.labelled import (
    LabelledText,
    balanced,
    collate_labelled,
    label_names,
    read_labelled,
)
from gptmini.data.named import data_file
from gptmini.data.splits import (
    SPLIT_FILE,
    check_split,
    make_split,
    read_split,
    split_digest,
)
from gptmini.errors import CorpusError, TokenizerError
from gptmini.tasks.base import DataSummary, Emit, EvalResult, Task

if TYPE_CHECKING:
    from gptmini.text.tokenizer import Tokenizer
    from gptmini.train.device import DeviceChoice
    from gptmini.train_config import TrainConfig

SPLIT_FRACTIONS: dict[str, float | None] = {"train": 0.70, "val": 0.10, "test": None}  # the book's random_split
SAMPLE_TEXTS = 4  # validation texts classified after each evaluation


class TextBatches:
    """Training batches of labelled texts: every epoch a permutation by ``(seed, epoch)``, rank ``r`` taking
    ``perm[r::world_size]``; incomplete batches dropped (the book's ``drop_last``)."""

    def __init__(self, ids: list[np.ndarray], labels: list[int], batch_size: int, *, pad_id: int, width: int | None,
                 seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.ids, self.labels = ids, labels
        self.batch_size, self.pad_id, self.width = batch_size, pad_id, width
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.batches_per_epoch = len(ids) // world_size // batch_size
        self.same_shape = width is not None  # else each batch is as long as its longest text

    def epoch_batches(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        order = np.random.default_rng([self.seed, int(epoch)]).permutation(len(self.ids))
        mine, b = order[: len(order) // self.world_size * self.world_size][self.rank :: self.world_size], self.batch_size
        for i in range(start_batch, self.batches_per_epoch):
            rows = mine[i * b : (i + 1) * b]
            yield Batch(*collate_labelled([self.ids[j] for j in rows], [self.labels[j] for j in rows], self.pad_id,
                                          self.width))


class ClassifyTask(Task):
    name = "classify"

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.labels: list[str] = []
        self.rows: dict[str, list[LabelledText]] = {}  # split -> its rows, in split order
        self.split: dict[str, Any] = {}
        self.ids: dict[str, list[np.ndarray]] = {}  # split -> token ids of each text (cut to the context)
        self.sets: dict[str, list[Batch]] = {}  # "val", "train" (evaluation), "test"
        self.pad_id = 0
        self.width: int | None = None  # the padded length (None: per batch)
        self._emit: Emit = lambda event: None

    # ------------------------------------------------------------------ data
    def load(self, tokenizer: Tokenizer | str, emit: Emit, resume_dir: Path | None = None) -> Tokenizer:
        cfg = self.config
        self._emit = emit
        train_path = data_file(cfg.data, task=self.name, kind="labelled")
        columns = named_columns(cfg.data[0]) or (cfg.text_column, cfg.label_column)
        paths = {"train": train_path, "val": cfg.val_data, "test": cfg.test_data}
        rows = {name: read_labelled(p, *columns) if p else None for name, p in paths.items()}
        self.labels = label_names(rows["train"], train_path)
        if cfg.balance:
            rows["train"] = balanced(rows["train"], cfg.seed)
        saved = read_split(resume_dir) if resume_dir is not None else None
        self.split = saved or make_split(paths, {k: len(v) for k, v in rows.items() if v is not None}, cfg.seed,
                                         SPLIT_FRACTIONS)
        check_split(self.split, paths)  # (balanced or not, the rows the positions refer to follow from the seed)
        for name in ("train", "val", "test"):
            part = self.split[name]
            source = rows["train"] if part["file"] == "train" else rows[name]
            self.rows[name] = [source[i] for i in part["indices"]]
        unknown = sorted({r.label for part in self.rows.values() for r in part} - set(self.labels))
        if unknown:
            raise CorpusError(f"the validation or test data has labels the training data lacks: {', '.join(unknown)}")
        if not self.rows["val"]:
            raise CorpusError(f"{train_path} has too few rows for a validation split (10 %); add rows or pass "
                              f"--val-data FILE")
        self.tokenizer = tok = _tokenizer_for(tokenizer, self.rows)
        self.pad_id = end_marker(tok)[-1]
        for name, part in self.rows.items():
            self.ids[name] = [_encode(tok, r, paths[name] or train_path, self.pad_id) for r in part]
        self.summary = DataSummary(
            name=Path(train_path).name, n_bytes=Path(train_path).stat().st_size,
            train_tokens=sum(len(t) for t in self.ids["train"]), val_tokens=sum(len(t) for t in self.ids["val"]),
            extra={"labels": self.labels, **{f"{k}_examples": len(v) for k, v in self.rows.items()}})
        return tok

    def model_overrides(self) -> dict[str, Any]:
        return {"n_classes": len(self.labels)}

    def run_files(self) -> dict[str, Any]:
        return {SPLIT_FILE: self.split}

    def adapt(self, model: torch.nn.Module) -> None:
        """The book's choice: the last block, the final norm and the new head train (``--train-layers all``:
        every weight, unless LoRA froze them for its adapters); the head always trains."""
        if self.config.train_layers == "last" and not self.config.lora_rank:
            model.requires_grad_(False)
            for module in (model.h[-1], model.ln_f):
                module.requires_grad_(True)
        model.score.requires_grad_(True)

    # --------------------------------------------------------------- batches
    def prepare(self, context_length: int, batch_size: int, *, seed: int, rank: int, world_size: int) -> TextBatches:
        cut = sum(len(t) > context_length for part in self.ids.values() for t in part)
        if cut:
            self._emit(ev.Warning(message=f"{cut} texts were longer than the context of {context_length} tokens "
                                          f"and were cut to it", step=0))
        self.ids = {name: [t[:context_length] for t in part] for name, part in self.ids.items()}
        self.width = max(len(t) for t in self.ids["train"]) if self.config.padding == "longest" else None
        ids = {name: [t[: self.width] for t in part] if self.width else part for name, part in self.ids.items()}
        label_of = {name: i for i, name in enumerate(self.labels)}
        labels = {name: [label_of[r.label] for r in part] for name, part in self.rows.items()}
        batches = TextBatches(ids["train"], labels["train"], batch_size, pad_id=self.pad_id, width=self.width,
                              seed=seed, rank=rank, world_size=world_size)
        if batches.batches_per_epoch == 0:
            per = len(ids["train"]) // world_size
            raise CorpusError(f"the train split has {len(ids['train'])} texts ({per} per process): fewer than the "
                              f"batch size {batch_size}; use --batch-size {max(per, 1)} or less, or more data")
        cap = self.config.eval_batches * batch_size
        for name, part, limit in (("val", "val", cap), ("train", "train", cap), ("test", "test", None)):
            chunk = ids[part][:limit], labels[part][:limit]
            self.sets[name] = [Batch(*collate_labelled(chunk[0][i:i + batch_size], chunk[1][i:i + batch_size],
                                                       self.pad_id, self.width))
                               for i in range(0, len(chunk[0]), batch_size)]
        return batches

    # ------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: torch.device, precision: DeviceChoice) -> EvalResult:
        val_loss, val_acc = loss_and_accuracy(model, self.sets["val"], device, precision)
        train_loss, train_acc = loss_and_accuracy(model, self.sets["train"], device, precision)
        return EvalResult(val_loss=val_loss, train_loss=train_loss,
                          metrics={"train_accuracy": train_acc, "val_accuracy": val_acc})

    def final_metrics(self, model: torch.nn.Module, device: torch.device, precision: DeviceChoice) -> dict[str, float]:
        if not self.sets.get("test"):
            return {}
        loss, accuracy = loss_and_accuracy(model, self.sets["test"], device, precision)
        return {"test_loss": loss, "test_accuracy": accuracy}

    @torch.no_grad()
    def samples(self, model: torch.nn.Module, step: int) -> list[ev.Event]:
        out: list[ev.Event] = []
        for row, ids in zip(self.rows["val"][:SAMPLE_TEXTS], self.ids["val"]):
            probs = label_probabilities(model, ids)
            best = int(probs.argmax())
            out.append(ev.Sample(step=step, prompt=row.text, text=f"{self.labels[best]} ({probs[best]:.0%})",
                                 reference=row.label))
        model.train()
        return out

    def describe(self) -> dict[str, Any]:
        cfg = self.config
        return {"name": self.name, "labels": self.labels, "balance": cfg.balance, "text_column": cfg.text_column,
                "label_column": cfg.label_column, "padding": cfg.padding, "pad_to": self.width,
                "pad_id": self.pad_id, "split_sha256": split_digest(self.split)}

    @property
    def sample_prompt(self) -> str | None:
        return self.rows["val"][0].text if self.rows.get("val") else None


def label_probabilities(model: torch.nn.Module, ids: np.ndarray | list[int]) -> torch.Tensor:
    """The label probabilities the model gives one text (from its last token)."""
    return predict(model, [np.asarray(ids)], pad_id=0)[0]


@torch.no_grad()
def predict(model: torch.nn.Module, texts: list[np.ndarray], pad_id: int, batch_size: int = 32) -> torch.Tensor:
    """The label probabilities (texts, labels) of token-id texts, each cut to the context, in padded batches
    whose logits are read at each text's last real token."""
    device = next(model.parameters()).device
    model.eval()
    texts = [t[: model.config.context_length] for t in texts]
    out = []
    for i in range(0, len(texts), batch_size):
        chunk = texts[i:i + batch_size]
        x, y, _ = collate_labelled(chunk, [0] * len(chunk), pad_id)
        logits, _ = model(x.to(device))
        last = torch.tensor([len(t) - 1 for t in chunk], device=device)
        out.append(torch.softmax(logits[torch.arange(len(chunk), device=device), last].float(), dim=-1).cpu())
    return torch.cat(out)


def loss_and_accuracy(model: torch.nn.Module, batches: list[Batch], device: torch.device,
                      precision: DeviceChoice) -> tuple[float, float]:
    """The mean loss (per batch, as the book's calc_loss_loader) and the share of texts whose label is the most
    probable one at their last real token."""
    total_loss, correct, seen = 0.0, 0, 0
    for batch in batches:
        y = batch.y.to(device)
        with precision.autocast():
            logits, _ = model(batch.x.to(device))
        where = y != IGNORE_INDEX
        picked, labels = logits[where].float(), y[where]
        total_loss += torch.nn.functional.cross_entropy(picked, labels).item()
        correct += int((picked.argmax(-1) == labels).sum())
        seen += int(labels.numel())
    return total_loss / max(1, len(batches)), correct / max(1, seen)


def named_columns(spec: str) -> tuple[str, str] | None:
    from gptmini.data.named import NAMED_DATA

    info = NAMED_DATA.get(spec)
    return tuple(info["columns"]) if info and "columns" in info else None


def encode_text(tokenizer: Tokenizer, text: str, pad_id: int) -> np.ndarray:
    """A text's token ids as the classifier reads them (an empty text: one pad token); ``TokenizerError`` for a
    character a char tokenizer lacks."""
    return np.asarray(tokenizer.encode(text) or [pad_id], dtype=np.int64)


def _encode(tok: Tokenizer, row: LabelledText, where: str, pad_id: int) -> np.ndarray:
    try:
        return encode_text(tok, row.text, pad_id)
    except TokenizerError as exc:
        raise CorpusError(f"{where}, row {row.index + 1}: {exc}") from None


def _tokenizer_for(wanted: Tokenizer | str, rows: dict[str, list[LabelledText]]) -> Tokenizer:
    if not isinstance(wanted, str):
        return wanted
    from gptmini.text.corpus import DOC_SEPARATOR
    from gptmini.text.tokenizer import build_tokenizer

    texts = [r.text for part in rows.values() for r in part] + [DOC_SEPARATOR]
    return build_tokenizer(wanted, texts if wanted == "char" else None)

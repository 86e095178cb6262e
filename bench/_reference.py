"""Shim for Raschka's *Build a LLM From Scratch* code (PyPI ``llms-from-scratch``).

Only ``llms_from_scratch.ch04`` and ``ch05`` are imported; nothing here calls
``tiktoken.get_encoding("gpt2")`` (that downloads). The GPT-2 BPE comes from
``gptmini.tokenizer.gpt2_encoding()`` (offline, byte-identical to tiktoken's),
and the book's ``GPTDatasetV1`` / ``create_dataloader_v1`` (ch. 2) are
re-implemented here line for line so they take that encoding.

Setup (the package's declared dependencies pull TensorFlow and JupyterLab)::

    pip install --no-deps llms-from-scratch
    pip install numpy tqdm matplotlib
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")  # ch05 imports matplotlib.pyplot

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

# The book's GPT_CONFIG_124M (ch. 4/5).
GPT_CONFIG_124M = {
    "vocab_size": 50257,
    "context_length": 256,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


def import_reference():
    """Return the ``(ch04, ch05)`` modules, or exit with install instructions."""
    try:
        from llms_from_scratch import ch04, ch05
    except ImportError as exc:
        sys.exit(
            f"cannot import llms_from_scratch ({exc}).\n"
            "install it with: pip install --no-deps llms-from-scratch && pip install numpy tqdm matplotlib"
        )
    return ch04, ch05


def data_file(name: str) -> Path | None:
    """``../shared/data/NAME`` if present, else ``None`` (callers print a skip)."""
    p = DATA / name
    return p if p.is_file() else None


def gpt2_encoding():
    """tiktoken's GPT-2 ``Encoding``, built offline by GPTMini (supports ``allowed_special``)."""
    from gptmini.text.tokenizer import gpt2_encoding as enc

    return enc()


def code_version() -> str:
    """``git`` commit of the checkout, with ``+dirty`` when gptmini/ has uncommitted changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gptmini"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def build_model(cfg: dict | None = None, seed: int = 123) -> torch.nn.Module:
    """Raschka's ``GPTModel`` (untied output head), seeded as in the book."""
    ch04, _ = import_reference()
    torch.manual_seed(seed)
    return ch04.GPTModel(dict(cfg or GPT_CONFIG_124M))


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------- ch. 2 data loader
class GPTDatasetV1(Dataset):
    """The book's sliding-window dataset (ch. 2), taking any tiktoken-like encoding."""

    def __init__(self, txt: str, tokenizer, max_length: int, stride: int):
        self.input_ids = []
        self.target_ids = []
        token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})
        for i in range(0, len(token_ids) - max_length, stride):
            input_chunk = token_ids[i : i + max_length]
            target_chunk = token_ids[i + 1 : i + max_length + 1]
            self.input_ids.append(torch.tensor(input_chunk))
            self.target_ids.append(torch.tensor(target_chunk))

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, idx):
        return self.input_ids[idx], self.target_ids[idx]


def create_dataloader_v1(txt, tokenizer, batch_size=4, max_length=256, stride=128, shuffle=True,
                         drop_last=True, num_workers=0):
    dataset = GPTDatasetV1(txt, tokenizer, max_length, stride)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=num_workers)


def book_loaders(text: str, cfg: dict | None = None, batch_size: int = 2, train_ratio: float = 0.90):
    """Train/val loaders exactly as in ch. 5 (split on characters, stride = context)."""
    cfg = cfg or GPT_CONFIG_124M
    enc = gpt2_encoding()
    split_idx = int(train_ratio * len(text))
    torch.manual_seed(123)
    train_loader = create_dataloader_v1(text[:split_idx], enc, batch_size=batch_size,
                                        max_length=cfg["context_length"], stride=cfg["context_length"],
                                        drop_last=True, shuffle=True, num_workers=0)
    val_loader = create_dataloader_v1(text[split_idx:], enc, batch_size=batch_size,
                                      max_length=cfg["context_length"], stride=cfg["context_length"],
                                      drop_last=False, shuffle=False, num_workers=0)
    return train_loader, val_loader


def ref_train_step(model, optimizer, x, y, calc_loss_batch, device="cpu"):
    """The inner step of ch05's ``train_model_simple``."""
    optimizer.zero_grad()
    loss = calc_loss_batch(x, y, model, device)
    loss.backward()
    optimizer.step()
    return loss

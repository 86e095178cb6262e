"""Helpers for the GGUF export tests: small models with every weight made distinct, a short training loop,
a checkpoint saved without a training run, and a plain numpy GPT-2 forward that reads a GGUF file by
llama.cpp's tensor names only (so it checks the layout, not our own mapping)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from gptmini.ckpt.store import save_checkpoint
from gptmini.model.config import ModelConfig
from gptmini.model.gpt import GPT


def distinct_model(cfg: ModelConfig, seed: int = 0) -> GPT:
    """A model whose biases are not zero and LayerNorm gains not one, so a bias or norm written under the
    wrong name changes the logits."""
    torch.manual_seed(seed)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.05)
            elif p.ndim == 1:  # LayerNorm gains
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.mul_(3.0)  # a larger spread than the 0.02 init: logits of order one, not of order 0.1
    return model


def trained_model(cfg: ModelConfig, ids: list[int], steps: int, seed: int = 0, lr: float = 1e-2) -> GPT:
    """``steps`` of AdamW on random windows of ``ids``: peaked predictions, so greedy choices are clear."""
    torch.manual_seed(seed)
    model = GPT(cfg)
    data = torch.tensor(ids)
    T = min(cfg.context_length, len(ids) - 1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - T, (8,))
        x = torch.stack([data[s:s + T] for s in starts])
        y = torch.stack([data[s + 1:s + T + 1] for s in starts])
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def save_run(run_dir: Path, model_state: dict[str, torch.Tensor], cfg: ModelConfig, tokenizer, **manifest) -> Path:
    """A checkpoint folder holding ``model_state`` (what a run saves, minus the training state)."""
    full = {"model_config": cfg.to_dict(), "tokenizer": tokenizer.describe(), **manifest}
    save_checkpoint(run_dir, 1, {k: v.detach().contiguous() for k, v in model_state.items()}, None, full)
    return run_dir


def our_logits(model: GPT, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids]))[0][0].double().numpy()


# ------------------------------------------------------------------ numpy GPT-2 over a GGUF file
def read_gguf(path: Path) -> tuple[dict, dict[str, np.ndarray], dict[str, str]]:
    """``(metadata, tensors as float64, tensor types)`` of a GGUF file."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(path)
    meta = {key: field.contents() for key, field in reader.fields.items()}
    tensors = {t.name: dequantize(t.data, t.tensor_type).astype(np.float64) for t in reader.tensors}
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    return meta, tensors, types


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def numpy_gpt2(meta: dict, W: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """Logits (T, vocab) of GPT-2 as llama.cpp defines it, from a file's metadata and tensors (``read_gguf``)."""
    assert meta["general.architecture"] == "gpt2"
    n_layer, n_head = meta["gpt2.block_count"], meta["gpt2.attention.head_count"]
    eps = meta["gpt2.attention.layer_norm_epsilon"]
    T = len(ids)
    x = W["token_embd.weight"][ids] + W["position_embd.weight"][:T]
    d = x.shape[-1]
    hd = d // n_head
    causal = np.triu(np.full((T, T), -np.inf), k=1)
    for i in range(n_layer):
        p = f"blk.{i}."
        h = _layer_norm(x, W[p + "attn_norm.weight"], W[p + "attn_norm.bias"], eps)
        qkv = h @ W[p + "attn_qkv.weight"].T + W[p + "attn_qkv.bias"]
        q, k, v = (a.reshape(T, n_head, hd).transpose(1, 0, 2) for a in np.split(qkv, 3, axis=-1))
        att = q @ k.transpose(0, 2, 1) / math.sqrt(hd) + causal
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(1, 0, 2).reshape(T, d)
        x = x + y @ W[p + "attn_output.weight"].T + W[p + "attn_output.bias"]
        h = _layer_norm(x, W[p + "ffn_norm.weight"], W[p + "ffn_norm.bias"], eps)
        h = _gelu_tanh(h @ W[p + "ffn_up.weight"].T + W[p + "ffn_up.bias"])
        x = x + h @ W[p + "ffn_down.weight"].T + W[p + "ffn_down.bias"]
    x = _layer_norm(x, W["output_norm.weight"], W["output_norm.bias"], eps)
    return x @ W.get("output.weight", W["token_embd.weight"]).T

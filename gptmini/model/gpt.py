"""A GPT-2 style decoder-only transformer, written to be read top to bottom.

Parameter names follow GPT-2's own checkpoint (wte, wpe, h.N.attn.c_attn, ...)
so OpenAI's weights can be mapped onto this model later.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from gptmini.data.batch import IGNORE_INDEX
from gptmini.model.config import ModelConfig
from gptmini.model.head_loss import linear_cross_entropy


@dataclass
class KVCache:
    """Keys and values of every layer for incremental decoding.

    ``k[i]``/``v[i]`` have shape (batch, heads, capacity, head_dim); ``pos`` is
    how many positions are filled. A forward pass with a cache appends to it.
    """

    k: list[torch.Tensor]
    v: list[torch.Tensor]
    pos: int = 0

    @classmethod
    def empty(cls, cfg: ModelConfig, batch: int, device, dtype, capacity: int | None = None) -> "KVCache":
        cap = capacity or cfg.context_length
        shape = (batch, cfg.n_heads, cap, cfg.head_dim)
        return cls(
            k=[torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)],
            v=[torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)],
        )

    @property
    def capacity(self) -> int:
        return self.k[0].shape[2]

    def reset(self) -> None:
        self.pos = 0


# PyTorch's flash-attention kernel on a CPU trains bf16 sequences of up to this many tokens slower than its math
# path (its backward: 1.4-2x slower at 32-128 tokens, batch 8, torch 2.13) and longer ones faster (1.1x at 256,
# 2.8x at 1024); in fp32, and without gradients, flash is as fast or faster. bench/README.md, issue 30.
CPU_BF16_FLASH_MIN_TOKENS = 129


def attention_kernels(q: torch.Tensor):
    """The attention kernels ``F.scaled_dot_product_attention`` may choose from for queries ``q``: its math
    path alone when training on short bf16 sequences on a CPU, otherwise its own choice."""
    if (q.device.type == "cpu" and q.dtype == torch.bfloat16 and q.shape[-2] < CPU_BF16_FLASH_MIN_TOKENS
            and q.requires_grad and not torch.compiler.is_compiling()):
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.d_model = cfg.d_model
        self.dropout = cfg.dropout
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.qkv_bias)
        self.c_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.d_model, dim=2)
        # (B, T, C) -> (B, heads, T, head_dim)
        q = q.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
        k = k.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
        v = v.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)

        dropout_p = self.dropout if self.training else 0.0
        if cache is None:
            with attention_kernels(q):
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                                   is_causal=attn_mask is None)
        else:
            start = cache.pos
            cache.k[layer][:, :, start : start + T] = k
            cache.v[layer][:, :, start : start + T] = v
            k_all = cache.k[layer][:, :, : start + T]
            v_all = cache.v[layer][:, :, : start + T]
            if attn_mask is not None:  # the caller's mask over every key so far (batched generation)
                y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=attn_mask)
            elif start == 0:
                y = F.scaled_dot_product_attention(q, k_all, v_all, is_causal=True)
            elif T == 1:  # one new token attends to everything before it
                y = F.scaled_dot_product_attention(q, k_all, v_all)
            else:  # a chunk appended to a filled cache: query i sees keys <= start + i
                rows = torch.arange(T, device=x.device).unsqueeze(1) + start
                cols = torch.arange(start + T, device=x.device).unsqueeze(0)
                y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=cols <= rows)

        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer, attn_mask)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.context_length, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        # With tied weights the head *is* wte.weight (no second parameter, so
        # state dicts hold each tensor once and safetensors can store them).
        self.lm_head = (None if cfg.tie_weights or cfg.n_classes
                        else nn.Linear(cfg.d_model, cfg.padded_vocab_size, bias=False))
        # A classifier (the book's chapter 6) scores its labels instead of the vocabulary (no bias, as
        # transformers' GPT2ForSequenceClassification).
        self.score = nn.Linear(cfg.d_model, cfg.n_classes, bias=False) if cfg.n_classes else None
        self.head_lora: nn.Module | None = None  # a LoRA adapter on the output head (model.lora.apply_lora)
        self.apply(self._init_weights)
        for emb in (self.wte, self.wpe):
            nn.init.normal_(emb.weight, mean=0.0, std=cfg.emb_init_std)
        # GPT-2: scale residual projections by 1/sqrt(2 * n_layers).
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
        positions: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Return ``(logits, loss)``.

        * ``targets`` given: ``loss`` is the mean next-token cross-entropy and
          ``logits`` is ``None`` (training never needs them back).
        * ``cache`` given: positions continue from ``cache.pos`` and the cache
          is extended with this chunk's keys and values.
        * ``last_only``: logits only for the last position (generation).
        * ``positions`` ``(B, T)`` and ``attn_mask`` (bool, True = may attend, broadcastable to
          ``(B, heads, T, keys)`` where keys are the cached ones and these): rows of different lengths in one
          batch, left-padded (``sample.batch``). The mask replaces the causal one; without them every row
          counts positions from ``cache.pos`` (or 0) under the causal mask.
        Inference logits cover the tokenizer's vocabulary only (no padding), or a classifier's labels.
        """
        B, T = idx.shape
        start = cache.pos if cache is not None else 0
        if start + T > self.config.context_length:
            raise ValueError(
                f"sequence of {start + T} tokens is longer than the context length "
                f"{self.config.context_length}"
            )
        if positions is None:
            positions = torch.arange(start, start + T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(positions))
        for i, block in enumerate(self.h):
            x = block(x, cache, i, attn_mask)
        x = self.ln_f(x)
        if cache is not None:
            cache.pos = start + T

        if targets is not None:
            return None, self.loss_from_hidden(x, targets)
        if last_only:
            x = x[:, -1:, :]
        return self.head(x)[..., : self.config.n_outputs], None

    def head(self, x: torch.Tensor) -> torch.Tensor:
        if self.score is not None:
            return self.score(x)
        w = self.wte.weight if self.lm_head is None else self.lm_head.weight
        return self._with_head_lora(F.linear(x, w), x)

    def _with_head_lora(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return logits if self.head_lora is None else logits + self.head_lora(x).to(logits.dtype)

    def loss_from_hidden(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the targets that are not ``IGNORE_INDEX``, over the tokenizer's vocabulary
        (padding rows get no probability, no gradient) or a classifier's labels."""
        if self.score is not None:
            logits = self.score(x)
            return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        V, Vp = self.config.vocab_size, self.config.padded_vocab_size
        w = self.wte.weight if self.lm_head is None else self.lm_head.weight
        if x.device.type == "cpu" and not torch.compiler.is_compiling():
            # Eager on a CPU: the head and its loss a block of rows at a time, never the full fp32 logits
            # (model.head_loss; 1.2-2x faster than the plain path, the same loss and gradients).
            low_rank = self.head_lora.factors(x) if self.head_lora is not None else None
            return linear_cross_entropy(x, w, targets, V, low_rank)
        # A GPU, or a compiled graph (which fuses the plain path itself): padding columns get a -inf bias,
        # added in the matmul's epilogue (measured faster on an H200 than a separate mask pass): probability 0,
        # gradient 0, the loss exactly over the real vocabulary.
        bias = None
        if Vp != V:
            bias = torch.zeros(Vp, device=x.device, dtype=x.dtype)
            bias = bias.masked_fill(torch.arange(Vp, device=x.device) >= V, float("-inf"))
        logits = self._with_head_lora(F.linear(x, w, bias), x)
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE_INDEX)

    # ------------------------------------------------------------------ helpers
    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count as the tokenizer's vocabulary sees it (padding rows excluded)."""
        cfg = self.config
        n = sum(p.numel() for p in self.parameters())
        pad_rows = cfg.padded_vocab_size - cfg.vocab_size
        n -= pad_rows * cfg.d_model * (1 if self.lm_head is None else 2)
        if self.head_lora is not None:  # its padding columns too
            n -= pad_rows * self.head_lora.lora_B.shape[1]
        if non_embedding:
            n -= self.wpe.weight.numel()
        return n

    def flops_per_token(self) -> int:
        """Training FLOPs per token (forward + backward), as in PaLM / nanoGPT."""
        cfg = self.config
        n = self.num_params(non_embedding=True)
        return 6 * n + 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim * cfg.context_length

    def new_cache(self, batch: int = 1, capacity: int | None = None) -> KVCache:
        p = self.wte.weight
        return KVCache.empty(self.config, batch, p.device, p.dtype, capacity)


def state_dict_mismatch(state: dict[str, torch.Tensor], cfg: ModelConfig) -> str | None:
    """Why ``state`` does not load into ``GPT(cfg)`` (missing or unexpected names, else the first wrong shape),
    or ``None`` when it does. Builds the model on the meta device: no memory, no initialisation."""
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in GPT(cfg).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        return f"missing: {', '.join(missing[:4]) or '-'}; unexpected: {', '.join(extra[:4]) or '-'}"
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape:
            return f"{name} has shape {tuple(state[name].shape)}, the config needs {shape}"
    return None

"""Your model in llama.cpp and Ollama: ``gptmini export RUN --format gguf --out model.gguf``.

The file uses llama.cpp's ``gpt2`` architecture, which is this model: learned positions, pre-LayerNorm
blocks, a fused q/k/v projection, the tanh GELU (ggml's ``gelu`` is ``0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))``,
the same formula as ``F.gelu(approximate="tanh")``; on the CPU ggml looks it up in a float16 table), LayerNorm
with eps 1e-5, and a head tied to the token embedding unless an ``output`` tensor is present. The tensors keep
``nn.Linear``'s (out, in) layout, which GGUF stores as llama.cpp's (in, out) dims. llama.cpp's loader requires
every bias of that architecture; a model without biases (``--no-bias``, or no q/k/v bias) gets zeros there,
which change nothing. The vocabulary padding rows are removed: llama.cpp sizes the embedding by the
tokenizer. Norms and biases stay float32 in every ``--dtype``; with ``q8_0`` a matrix whose rows are not a
multiple of 32 values (the q8_0 block) is written as float16 instead.

``write_gguf`` takes a state dict, its config and tokenizer (already-merged weights, e.g. after LoRA), so a
fine-tuned model goes through the same code as a pre-trained one; ``export_gguf`` reads a checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gptmini.errors import CheckpointError, ConfigError
from gptmini.interop.gguf_vocab import GGUFVocab, gguf_vocab, require_gguf
from gptmini.model.config import ModelConfig
from gptmini.paths import check_output_file

if TYPE_CHECKING:  # torch is imported where it is used: the command line reads GGUF_DTYPES without it
    import torch

GGUF_DTYPES = ("f32", "f16", "bf16", "q8_0")
LM_TASKS = ("pretrain", "instruct")  # a checkpoint's manifest "task" llama.cpp can run (absent = pretrain)
LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default, used by every LayerNorm in gptmini.model.gpt
Q8_0_BLOCK = 32

_LAYER = {  # GPTMini name in block i -> llama.cpp name in blk.i
    "ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output",
    "ln_2": "ffn_norm", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down",
}


@dataclass
class GGUFWritten:
    """What ``write_gguf`` wrote."""

    path: Path
    dtype: str
    n_tensors: int
    context_length: int  # llama.cpp's -c / Ollama's num_ctx must not exceed it (GPT-2's positions are a table)
    eot_text: str | None = None  # the tokenizer's end-of-text token (bos and eos in the file)
    zero_biases: list[str] = field(default_factory=list)  # llama.cpp names filled with zeros
    kept_f16: list[str] = field(default_factory=list)  # q8_0: matrices whose rows are not whole blocks


# ------------------------------------------------------------------ checks before any work
def check_dtype(dtype: str) -> None:
    if dtype not in GGUF_DTYPES:
        raise ConfigError(f"unknown GGUF dtype {dtype!r}; choose one of: {', '.join(GGUF_DTYPES)}")


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


# ------------------------------------------------------------------ tensors
def check_language_model(state: dict[str, torch.Tensor], cfg: ModelConfig) -> None:
    """Raise unless ``state`` is exactly a GPTMini language model of shape ``cfg`` (vocabulary head)."""
    from gptmini.model.gpt import state_dict_mismatch

    head = state.get("lm_head.weight")
    if head is not None and head.shape[0] not in (cfg.vocab_size, cfg.padded_vocab_size):
        raise CheckpointError(f"the model's head has {head.shape[0]} outputs, not one per token of the "
                              f"{cfg.vocab_size}-token vocabulary: llama.cpp runs language models only")
    problem = state_dict_mismatch(state, cfg)
    if problem:
        raise CheckpointError(f"the weights are not the GPTMini language model their config describes ({problem}): "
                              "llama.cpp's gpt2 cannot run them")


def gguf_tensors(state: dict[str, torch.Tensor], cfg: ModelConfig) -> tuple[dict[str, np.ndarray], list[str]]:
    """The float32 tensors under llama.cpp's gpt2 names, and the names of the biases filled with zeros."""
    import torch

    check_language_model(state, cfg)
    V, d = cfg.vocab_size, cfg.d_model

    def f32(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())

    out = {"token_embd.weight": f32(state["wte.weight"][:V]), "position_embd.weight": f32(state["wpe.weight"])}
    zeros: list[str] = []

    def put(ours: str, theirs: str, size: int) -> None:
        out[f"{theirs}.weight"] = f32(state[f"{ours}.weight"])
        bias = state.get(f"{ours}.bias")
        if bias is None:
            zeros.append(f"{theirs}.bias")
        out[f"{theirs}.bias"] = f32(bias) if bias is not None else np.zeros(size, np.float32)

    sizes = {"ln_1": d, "attn.c_attn": 3 * d, "attn.c_proj": d, "ln_2": d, "mlp.c_fc": 4 * d, "mlp.c_proj": d}
    for i in range(cfg.n_layers):
        for ours, theirs in _LAYER.items():
            put(f"h.{i}.{ours}", f"blk.{i}.{theirs}", sizes[ours])
    put("ln_f", "output_norm", d)
    if "lm_head.weight" in state:  # untied head; absent, llama.cpp reuses token_embd
        out["output.weight"] = f32(state["lm_head.weight"][:V])
    return out, zeros


def encode_tensor(name: str, data: np.ndarray, dtype: str) -> tuple[np.ndarray, Any]:
    """``data`` (float32) in the file's ``dtype``: ``(array, GGMLQuantizationType)`` for ``GGUFWriter``.
    One-dimensional tensors (norms, biases) stay float32."""
    gguf = require_gguf()
    Q, quantize = gguf.GGMLQuantizationType, gguf.quants.quantize
    if data.ndim == 1 or dtype == "f32":
        return data, Q.F32
    if dtype == "q8_0" and data.shape[-1] % Q8_0_BLOCK == 0:
        return quantize(data, Q.Q8_0), Q.Q8_0
    if dtype == "bf16":
        return quantize(data, Q.BF16), Q.BF16
    half = data.astype(np.float16)  # f16, and q8_0's fallback
    if np.isfinite(data).all() and not np.isfinite(half).all():
        raise ConfigError(f"{name} has values beyond float16's range (±65504); export with --dtype bf16 or f32")
    return half, Q.F16


def _file_type(dtype: str) -> int:
    F = require_gguf().LlamaFileType
    return int({"f32": F.ALL_F32, "f16": F.MOSTLY_F16, "bf16": F.MOSTLY_BF16, "q8_0": F.MOSTLY_Q8_0}[dtype])


# ------------------------------------------------------------------ writing
def write_gguf(state: dict[str, torch.Tensor], cfg: ModelConfig, tokenizer: Any, out: str | Path, *,
               dtype: str = "f32", name: str = "gptmini") -> GGUFWritten:
    """Write a GGUF file llama.cpp runs as ``gpt2`` (atomically: a temporary file renamed into place)."""
    gguf = require_gguf()
    check_dtype(dtype)
    if tokenizer.vocab_size != cfg.vocab_size:
        raise CheckpointError(f"the tokenizer has {tokenizer.vocab_size} tokens, the model {cfg.vocab_size}")
    tensors, zeros = gguf_tensors(state, cfg)
    vocab = gguf_vocab(tokenizer)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    result = GGUFWritten(path=path, dtype=dtype, n_tensors=len(tensors), context_length=cfg.context_length,
                         eot_text=vocab.eot_text, zero_biases=zeros)
    writer = gguf.GGUFWriter(tmp, "gpt2")
    try:
        _add_metadata(writer, cfg, vocab, name, dtype)
        for tname, data in tensors.items():
            encoded, qtype = encode_tensor(tname, data, dtype)
            if dtype == "q8_0" and data.ndim == 2 and qtype != gguf.GGMLQuantizationType.Q8_0:
                result.kept_f16.append(tname)
            writer.add_tensor(tname, encoded, raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        writer.close()  # a no-op once closed; on an error it lets go of the temporary file, removed next
        if tmp.exists():
            tmp.unlink()
    return result


def _add_metadata(writer: Any, cfg: ModelConfig, vocab: GGUFVocab, name: str, dtype: str) -> None:
    writer.add_name(name)
    writer.add_file_type(_file_type(dtype))
    writer.add_context_length(cfg.context_length)
    writer.add_embedding_length(cfg.d_model)
    writer.add_feed_forward_length(4 * cfg.d_model)
    writer.add_block_count(cfg.n_layers)
    writer.add_head_count(cfg.n_heads)
    writer.add_layer_norm_eps(LAYER_NORM_EPS)
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre is not None:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    if vocab.merges:
        writer.add_token_merges(vocab.merges)
    if vocab.eot_id is not None:
        writer.add_bos_token_id(vocab.eot_id)
        writer.add_eos_token_id(vocab.eot_id)
    writer.add_add_bos_token(False)  # GPTMini never puts end-of-text in front of a prompt
    writer.add_add_eos_token(False)


# ------------------------------------------------------------------ from a checkpoint
def export_gguf(path: str | Path, out: str | Path, *, dtype: str = "f32", force: bool = False,
                ollama: bool = False, template: str | None = None) -> tuple[GGUFWritten, Path | None]:
    """Write the checkpoint at ``path`` (or a run folder's latest) as ``out``; with ``ollama`` also a
    ``Modelfile`` beside it, whose TEMPLATE is ``template`` (Ollama's Go-template syntax, see
    ``modelfile.ollama_template``) or, for a run without one, the raw prompt. Returns what was written and the
    Modelfile's path."""
    from gptmini.ckpt.state import model_for_export
    from gptmini.interop.modelfile import MODELFILE, check_template, write_modelfile

    check_dtype(dtype)
    check_template(template)
    require_gguf()
    target = check_output_file(out, force=force, suffix=".gguf", also=(MODELFILE,) if ollama else ())
    model = model_for_export(path)
    if model.task not in LM_TASKS:
        raise CheckpointError(f"{model.path} is a {model.task} checkpoint; llama.cpp runs language models only "
                              f"({' or '.join(LM_TASKS)})")
    if template is None and model.task == "instruct":  # prompted in Ollama as it was trained
        from gptmini.data.prompts import prompt_style

        template = prompt_style(model.manifest["task"]["template"]).ollama_template
    name = f"{model.path.parent.name}-{model.path.name}"
    written = write_gguf(model.state, model.config, model.tokenizer, target, dtype=dtype, name=name)
    modelfile = None
    if ollama:
        modelfile = write_modelfile(target, written.eot_text, model.config.context_length, template=template,
                                    source=str(model.path))
    return written, modelfile

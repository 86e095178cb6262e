"""Your model out: ``gptmini export RUN --format hf --out DIR`` writes a folder that transformers loads
(``GPT2LMHeadModel.from_pretrained`` and ``AutoTokenizer.from_pretrained``) with the same logits.

The weights go in transformers' GPT-2 layout (Conv1D matrices transposed back to (in, out), the
vocabulary padding removed, a tied head left out), with zero biases where the model has none (GPT-2
always has them, and adding zero changes nothing). The tokenizer goes with them: GPT-2's
``vocab.json`` / ``merges.txt`` (the very files the gpt2 tokenizer is built from), or, for the char
tokenizer, a ``tokenizer.json`` made with the ``tokenizers`` library that maps each character to the
same id and decodes by joining them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from gptmini.ckpt.files import write_folder_atomic
from gptmini.ckpt.state import model_for_export
from gptmini.errors import CheckpointError, ConfigError
from gptmini.interop.pretrained import CONV1D
from gptmini.model.config import ModelConfig


def hf_state(state: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """This model's state dict in transformers' ``GPT2LMHeadModel`` names and shapes."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name in ("wte.weight", "lm_head.weight"):
            tensor = tensor[: cfg.vocab_size]
        elif name == "score.weight":  # a classifier's head: GPT2ForSequenceClassification's own name
            out[name] = tensor.contiguous().float()
            continue
        elif name.endswith(CONV1D):
            tensor = tensor.t()
        out[name if name == "lm_head.weight" else f"transformer.{name}"] = tensor.contiguous().float()
    d = cfg.d_model
    for i in range(cfg.n_layers):  # GPT-2 has every bias; a model without them has zeros there
        for name, size in (("ln_1.bias", d), ("ln_2.bias", d), ("attn.c_attn.bias", 3 * d),
                           ("attn.c_proj.bias", d), ("mlp.c_fc.bias", 4 * d), ("mlp.c_proj.bias", d)):
            out.setdefault(f"transformer.h.{i}.{name}", torch.zeros(size))
    out.setdefault("transformer.ln_f.bias", torch.zeros(d))
    return out


def hf_config(cfg: ModelConfig, eot_id: int | None, task: dict[str, Any] | None = None) -> dict[str, Any]:
    """transformers' GPT-2 config: a language model, or (a classifier) ``GPT2ForSequenceClassification`` with its
    labels, which takes the logits at the last token that is not ``pad_token_id`` (the run's padding)."""
    if cfg.n_classes:
        labels = (task or {}).get("labels") or [str(i) for i in range(cfg.n_classes)]
        head = {"architectures": ["GPT2ForSequenceClassification"], "num_labels": cfg.n_classes,
                "id2label": dict(enumerate(labels)), "label2id": {name: i for i, name in enumerate(labels)},
                "pad_token_id": (task or {}).get("pad_id", eot_id)}
    else:
        head = {"architectures": ["GPT2LMHeadModel"]}
    return {
        **head, "model_type": "gpt2", "vocab_size": cfg.vocab_size,
        "n_positions": cfg.context_length, "n_ctx": cfg.context_length, "n_embd": cfg.d_model,
        "n_layer": cfg.n_layers, "n_head": cfg.n_heads, "n_inner": None, "activation_function": "gelu_new",
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02, "scale_attn_weights": True, "use_cache": True,
        "tie_word_embeddings": cfg.tie_weights, "bos_token_id": eot_id, "eos_token_id": eot_id,
        "torch_dtype": "float32",
    }


def export_hf(path: str | Path, out_dir: str | Path, *, force: bool = False) -> Path:
    """Write the checkpoint at ``path`` (or a run folder's latest) as a transformers folder ``out_dir``."""
    from safetensors.torch import save_file


    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise ConfigError(f"--out {out} exists and is not an empty folder; pick a new one, or pass --force to "
                          f"replace it")
    model = model_for_export(path)
    cfg, tokenizer = model.config, model.tokenizer

    def fill(folder: Path) -> None:
        save_file(hf_state(model.state, cfg), str(folder / "model.safetensors"), metadata={"format": "pt"})
        eot = getattr(tokenizer, "eot_id", None)
        _write_json(folder / "config.json", hf_config(cfg, eot, model.manifest.get("task")))
        _write_json(folder / "generation_config.json",
                    {"bos_token_id": eot, "eos_token_id": eot, "do_sample": False, "max_length": cfg.context_length})
        _write_tokenizer(tokenizer, folder, cfg.context_length)

    return write_folder_atomic(out, fill)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def _write_tokenizer(tokenizer: Any, folder: Path, context: int) -> None:
    if tokenizer.name == "gpt2":
        from gptmini.text.tokenizer import verified_gpt2_files

        files = verified_gpt2_files()
        shutil.copyfile(files["encoder.json"], folder / "vocab.json")
        shutil.copyfile(files["vocab.bpe"], folder / "merges.txt")
        _write_json(folder / "tokenizer_config.json", {
            "tokenizer_class": "GPT2Tokenizer", "model_max_length": context, "add_prefix_space": False,
            "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"})
        _write_json(folder / "special_tokens_map.json", {
            "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"})
        return
    if tokenizer.name != "char":
        raise CheckpointError(f"cannot export a {tokenizer.name!r} tokenizer for transformers")
    try:
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    except ImportError:
        raise ConfigError("exporting a char tokenizer needs the tokenizers package: pip install tokenizers") from None
    vocab = {ch: i for i, ch in enumerate(tokenizer.chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character alone
    tok.decoder = decoders.Fuse()  # ... and joined back with nothing in between
    tok.save(str(folder / "tokenizer.json"))
    _write_json(folder / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast",
                                                   "model_max_length": context, "clean_up_tokenization_spaces": False})

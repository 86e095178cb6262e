"""OpenAI's GPT-2 weights in: ``--init-from gpt2`` (or a folder), as Raschka's chapter 5 ends and nanoGPT's
``GPT.from_pretrained`` does.

A folder must hold a GPT-2 ``config.json`` and ``model.safetensors``, in transformers' key layout
(``transformer.h.0.attn.c_attn.weight``) or the bare one of ``openai-community/gpt2``'s own file
(``h.0.attn.c_attn.weight``). A name is fetched once with ``huggingface_hub`` into its usual cache
(those two files only: never a pickle). GPT-2's Conv1D weights are stored (in, out) and are transposed
into ``nn.Linear``'s (out, in); the head is tied to the token embedding; the vocabulary is padded as
the engine pads it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from gptmini.errors import ConfigError
from gptmini.model.config import ModelConfig

HUB_REPOS = {name: f"openai-community/{name}" for name in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")}
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
NOT_WEIGHTS = (".attn.bias", ".attn.masked_bias")  # causal masks older transformers versions saved
FILES = ("config.json", "model.safetensors")


def is_hub_name(spec: str) -> bool:
    return spec in HUB_REPOS and not Path(spec).expanduser().exists()


def check_init_spec(spec: str) -> None:
    """A folder that exists or a GPT-2 name (the folder's contents are checked when it is read)."""
    if not is_hub_name(spec) and not Path(spec).expanduser().is_dir():
        raise ConfigError(f"--init-from {spec!r} is neither a folder nor a GPT-2 name "
                          f"({', '.join(HUB_REPOS)})")


def fetch(spec: str) -> Path:
    """The folder holding ``config.json`` and ``model.safetensors`` for ``spec`` (downloading a name once)."""
    if not is_hub_name(spec):
        folder = Path(spec).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"--init-from {spec!r} is neither a folder nor a GPT-2 name ({', '.join(HUB_REPOS)})")
        return folder
    repo = HUB_REPOS[spec]
    try:
        from huggingface_hub import constants, hf_hub_download
    except ImportError:
        raise ConfigError("--init-from by name downloads with huggingface_hub, which is not installed: "
                          "pip install huggingface_hub (or pass a folder)") from None
    with _quiet_hub():
        try:  # fetched before: no network needed
            return Path([hf_hub_download(repo, name, local_files_only=True) for name in FILES][0]).parent
        except Exception:  # noqa: BLE001 - not in the cache (or a damaged cache): download
            pass
        from gptmini.text.fetch import unreachable

        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else unreachable(f"{constants.ENDPOINT}/{repo}")
        if why is not None:
            raise ConfigError(_offline(repo, why))
        try:
            paths = [hf_hub_download(repo, name) for name in FILES]  # cached; progress bars as the hub shows them
        except Exception as exc:  # offline, unreachable, refused: every way it fails means "no files"
            raise ConfigError(_offline(repo, type(exc).__name__)) from None
    return Path(paths[0]).parent


def _offline(repo: str, why: str) -> str:
    return (f"could not fetch {repo} from the Hugging Face Hub ({why}); offline, download its config.json and "
            f"model.safetensors on a connected machine and pass their folder: --init-from DIR")


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    """The hub client's own log lines (a retry message every few seconds) off while it works: a failure is
    told in one line of ours."""
    hub = logging.getLogger("huggingface_hub")
    before = hub.level
    hub.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub.setLevel(before)


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise ConfigError(f"{folder} has no config.json: not a transformers GPT-2 folder")
    try:
        hf = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(hf, dict) or hf.get("model_type") != "gpt2":
        kind = hf.get("model_type") if isinstance(hf, dict) else None
        raise ConfigError(f"{path} describes {'a ' + repr(kind) if kind else 'no'} model, not GPT-2 "
                          f"(--init-from takes GPT-2: {', '.join(HUB_REPOS)} or a folder of one)")
    for key in ("n_embd", "n_layer", "n_head", "n_positions", "vocab_size"):
        if not isinstance(hf.get(key), int) or hf[key] < 1:
            raise ConfigError(f"{path}: {key} must be a positive whole number, got {hf.get(key)!r}")
    if hf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ConfigError(f"{path}: activation {hf['activation_function']!r} is not GPT-2's tanh GELU")
    return hf


def model_config(hf: dict[str, Any], *, context: int | None = None, dropout: float | None = None) -> ModelConfig:
    """GPT-2's shape from its ``config.json``; ``context`` may crop the position table, ``dropout`` is free."""
    if context is not None and context > hf["n_positions"]:
        raise ConfigError(f"--context {context} is longer than this GPT-2's {hf['n_positions']} positions")
    return ModelConfig(vocab_size=hf["vocab_size"], context_length=context or hf["n_positions"],
                       n_layers=hf["n_layer"], n_heads=hf["n_head"], d_model=hf["n_embd"],
                       dropout=0.0 if dropout is None else dropout, bias=True, qkv_bias=True,
                       tie_weights=hf.get("tie_word_embeddings", True))


def load_state(folder: Path, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """GPT-2's weights as this model's state dict (transposed, cropped, padded), checked against ``cfg``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = folder / "model.safetensors"
    if not path.is_file():
        pickles = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt*")]
        if pickles:
            raise ConfigError(f"{folder} holds only {pickles[0]}, a pickle, which GPTMini never loads; save it as "
                              f"model.safetensors (transformers: save_pretrained(dir, safe_serialization=True))")
        raise ConfigError(f"{folder} has no model.safetensors")
    try:
        raw = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not a valid safetensors file ({exc})") from None
    state = {}
    for key, tensor in raw.items():
        name = key.removeprefix("transformer.")
        if name.endswith(NOT_WEIGHTS) or (name == "lm_head.weight" and cfg.tie_weights):
            continue
        state[name] = tensor.t().contiguous() if name.endswith(CONV1D) else tensor
    return _fit(state, cfg, path)


def _fit(state: dict[str, torch.Tensor], cfg: ModelConfig, path: Path) -> dict[str, torch.Tensor]:
    """Crop the position table to the context, pad the vocabulary, and check every shape and name."""
    from gptmini.model.gpt import state_dict_mismatch

    if "wpe.weight" in state:
        state["wpe.weight"] = state["wpe.weight"][: cfg.context_length]
    for name in ("wte.weight", "lm_head.weight"):
        if name in state and state[name].shape[0] == cfg.vocab_size < cfg.padded_vocab_size:
            pad = state[name].new_zeros(cfg.padded_vocab_size - cfg.vocab_size, cfg.d_model)
            state[name] = torch.cat([state[name], pad])
    problem = state_dict_mismatch(state, cfg)
    if problem:
        raise ConfigError(f"{path} does not hold the weights config.json describes ({problem})")
    return {name: tensor.float() for name, tensor in state.items()}


def load_model(spec: str, *, context: int | None = None, dropout: float | None = None, device: str = "cpu"):
    """``(model, model_config, folder)`` for ``spec``: GPT-2 as this project's ``GPT``, in eval mode."""
    from gptmini.model.gpt import GPT

    folder = fetch(spec)
    cfg = model_config(read_config(folder), context=context, dropout=dropout)
    state = load_state(folder, cfg)
    with torch.device("meta"):
        model = GPT(cfg)
    model = model.to_empty(device=device)
    model.load_state_dict(state)
    return model.eval(), cfg, folder

"""What ``--init-from`` names: OpenAI's GPT-2 (a name or a transformers folder, ``interop.pretrained``) or a
GPTMini run or checkpoint folder (the user's own pre-trained model, with its own tokenizer).

Either way a run gets the same four things: the saved model's shape, its tokenizer, its weights fitted to
the run's model (the position table cropped to ``--context``), and the sha256 of the weights file, which
names the base of a LoRA run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gptmini.ckpt.layout import MANIFEST, MODEL_FILE
from gptmini.errors import CheckpointError, ConfigError
from gptmini.model.config import ModelConfig


@dataclass
class InitWeights:
    spec: str  # what --init-from said
    kind: str  # "gpt2" or "gptmini"
    folder: Path  # the GPT-2 folder, or the GPTMini checkpoint folder
    model_config: ModelConfig  # the saved model's own shape (its whole context)
    tokenizer_description: dict[str, Any] | None  # a GPTMini checkpoint's tokenizer; None: GPT-2's

    @property
    def weights_file(self) -> Path:
        return self.folder / MODEL_FILE

    @functools.cached_property
    def sha256(self) -> str:
        """The weights file's sha256 (a GPTMini checkpoint's manifest already holds it)."""
        if self.kind == "gptmini":
            from gptmini.ckpt.seal import read_manifest

            return read_manifest(self.folder)["files"][MODEL_FILE]["sha256"]
        from gptmini.ckpt.files import _sha256

        return _sha256(self.weights_file)

    def tokenizer(self):
        from gptmini.text.tokenizer import build_tokenizer, tokenizer_from_description

        if self.tokenizer_description is None:
            return build_tokenizer("gpt2")
        return tokenizer_from_description(self.tokenizer_description)

    def state(self, cfg: ModelConfig) -> dict[str, torch.Tensor]:
        """The weights as a state dict of a language model of shape ``cfg`` (the run's: context and dropout may
        differ; a classifier of that shape takes them through ``load_base``)."""
        if self.kind == "gpt2":
            from gptmini.interop.pretrained import load_state

            return load_state(self.folder, cfg.with_overrides(n_classes=0))
        from gptmini.ckpt.store import load_checkpoint

        state = dict(load_checkpoint(self.folder, with_optimizer=False).model)
        state["wpe.weight"] = state["wpe.weight"][: cfg.context_length]
        return state

    def describe(self) -> dict[str, Any]:
        """What ``config.json`` and each checkpoint of the run record of it."""
        return {"from": self.spec, "kind": self.kind, "folder": str(self.folder.resolve()), "sha256": self.sha256}


def is_gptmini_folder(path: Path) -> bool:
    """A GPTMini checkpoint folder, or a run folder holding one."""
    return (path / MANIFEST).is_file() or (path / "latest").is_file() or any(path.glob(f"step-*/{MANIFEST}"))


def open_init(spec: str) -> InitWeights:
    """What ``spec`` names, checked (a GPT-2 name is downloaded once, as ``interop.pretrained.fetch``)."""
    path = Path(spec).expanduser()
    if path.is_dir() and is_gptmini_folder(path):
        from gptmini.ckpt.seal import verify_checkpoint
        from gptmini.ckpt.store import resolve_checkpoint

        ckpt_dir = resolve_checkpoint(path)
        manifest = verify_checkpoint(ckpt_dir, files=(MODEL_FILE,))
        if manifest.get("lora") is not None:
            raise CheckpointError(f"--init-from {spec}: {ckpt_dir} holds LoRA adapters; export the merged model "
                                  f"first (gptmini export {spec} --format weights) or resume it with --resume")
        return InitWeights(spec, "gptmini", ckpt_dir, ModelConfig.from_dict(manifest["model_config"]),
                           manifest["tokenizer"])
    from gptmini.interop.pretrained import fetch, model_config, read_config

    folder = fetch(spec)
    return InitWeights(spec, "gpt2", folder, model_config(read_config(folder)), None)


def init_model_config(cfg, vocab_size: int, init: InitWeights) -> ModelConfig:
    """The saved model's shape for a run of options ``cfg``: ``--context`` may crop it and ``--dropout`` is free
    (default 0, as the book fine-tunes); another dims flag must agree with it."""
    base = init.model_config
    clashes = [f"--{name.replace('_', '-')} {getattr(cfg, name)} (it has {getattr(base, name)})"
               for name in ("n_layers", "n_heads", "d_model") if getattr(cfg, name) not in (None, getattr(base, name))]
    if cfg.bias is not None and cfg.bias != base.bias:
        clashes.append(f"--{'' if cfg.bias else 'no-'}bias (it has {'biases' if base.bias else 'none'})")
    if "preset" in cfg.explicit:
        clashes.append(f"--preset {cfg.preset}")
    if clashes:
        raise ConfigError(f"--init-from {init.spec} takes the model's shape from the model it names; "
                          f"drop {', '.join(clashes)}")
    if base.vocab_size != vocab_size:
        raise ConfigError(f"--init-from {init.spec}: the model has a vocabulary of {base.vocab_size}, its "
                          f"tokenizer {vocab_size}")
    if cfg.context is not None and cfg.context > base.context_length:
        raise ConfigError(f"--context {cfg.context} is longer than the {base.context_length} positions of "
                          f"--init-from {init.spec}")
    return base.with_overrides(context_length=cfg.context, dropout=cfg.dropout if cfg.dropout is not None else 0.0)


def open_base(described: dict[str, Any], where: Path) -> InitWeights:
    """The base weights a LoRA checkpoint at ``where`` names (``InitWeights.describe()``), checked by sha256."""
    folder = Path(described["folder"])
    spec = str(folder) if folder.is_dir() else described["from"]
    try:
        init = open_init(spec)
    except (ConfigError, CheckpointError) as exc:
        raise CheckpointError(f"{where} holds LoRA adapters for the base model {described['from']}, which cannot "
                              f"be opened: {exc}") from None
    init.spec = described["from"]  # what the user named, kept through resumes
    if init.sha256 != described["sha256"]:
        raise CheckpointError(f"{where} holds LoRA adapters for {described['from']} with sha256 "
                              f"{described['sha256'][:12]}; the one found has {init.sha256[:12]} (a different model)")
    return init


def load_base(model: torch.nn.Module, state: dict[str, torch.Tensor], where: Path | str) -> frozenset[str]:
    """A base model's weights into ``model``, which may be a classifier built on it: its new head (``score``) is
    the one weight the base may lack, the base's language-model head the one the model may not need. Returns
    the names loaded (what a partial checkpoint of the model may leave out)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state) - {"score.weight"})
    unexpected = sorted(set(state) - set(own) - {"lm_head.weight"})
    if missing or unexpected:
        raise CheckpointError(f"{where}: the base weights do not fit this model (missing: "
                              f"{', '.join(missing[:4]) or '-'}; unexpected: {', '.join(unexpected[:4]) or '-'})")
    loaded = {k: v for k, v in state.items() if k in own}
    model.load_state_dict(loaded, strict=False)
    return frozenset(loaded)

"""GPTMini: pretrain a small GPT from scratch (library; no UI code here).

``import gptmini`` is light: torch is imported only when something needs it
(the model, the engine, sampling), so the corpus and tokenisation tools and the
command line's option checks start in a fraction of a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gptmini.errors import GPTMiniError
from gptmini.model.config import ModelConfig
from gptmini.presets import PRESETS, preset_config

if TYPE_CHECKING:
    from gptmini.model.gpt import GPT, KVCache
    from gptmini.session import RunSession
    from gptmini.train.engine import Trainer
    from gptmini.train_config import TrainConfig

__version__ = "0.1.0"

__all__ = ["GPT", "KVCache", "ModelConfig", "PRESETS", "preset_config", "GPTMiniError", "RunSession", "TrainConfig",
           "Trainer", "__version__"]

# names a notebook reaches for, imported on first use (the model and the engine import torch)
_LAZY = {"GPT": "gptmini.model.gpt", "KVCache": "gptmini.model.gpt", "Trainer": "gptmini.train.engine",
         "TrainConfig": "gptmini.train_config", "RunSession": "gptmini.session"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gptmini' has no attribute {name!r}")

"""GPTMini: pretrain a small GPT from scratch (library; no UI code here).

``import gptmini`` is light: torch is imported only when something needs it
(the model, the engine, sampling), so the corpus and tokenisation tools and the
command line's option checks start in a fraction of a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gptmini.config import PRESETS, ModelConfig, preset_config
from gptmini.errors import GPTMiniError

if TYPE_CHECKING:
    from gptmini.model import GPT, KVCache

__version__ = "0.1.0"

__all__ = ["GPT", "KVCache", "ModelConfig", "PRESETS", "preset_config", "GPTMiniError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("GPT", "KVCache"):
        from gptmini import model

        return getattr(model, name)
    raise AttributeError(f"module 'gptmini' has no attribute {name!r}")

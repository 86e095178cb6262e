"""GPTMini: pretrain a small GPT from scratch (library; no UI code here)."""

from gptmini.config import PRESETS, ModelConfig, preset_config
from gptmini.errors import GPTMiniError
from gptmini.model import GPT, KVCache

__version__ = "0.1.0"

__all__ = ["GPT", "KVCache", "ModelConfig", "PRESETS", "preset_config", "GPTMiniError", "__version__"]

"""Every option of a training run, in one validated dataclass.

The CLI, the TUI's new-run form and ``--config FILE.toml`` all build a
``TrainConfig``; the engine only ever reads one. Its fields, their types and
their defaults are the option table's (``gptmini.options.OPTIONS``). Fields
left ``None`` are resolved from the preset, the tokenizer or the device when
the run starts.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any

from gptmini.errors import ConfigError
from gptmini.options import BY_NAME, DEVICES, DTYPES, OPTIONS, TOKENIZERS, read_option
from gptmini.presets import PRESETS, default_batch_size, preset_config, preset_default

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# One field per option, in the table's order, with the table's type and default.
OptionFields = make_dataclass("OptionFields", [(o.name, o.field_type, field(default=o.default)) for o in OPTIONS],
                              namespace={"__module__": __name__})


@dataclass
class TrainConfig(OptionFields):
    """The options of one run (``OptionFields``: one per entry of ``OPTIONS``), checked when built."""

    # which fields the user set explicitly (used when resuming)
    explicit: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        for name, opt in BY_NAME.items():  # types first, with the command line's messages
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, read_option(name, value))
        if self.batch_size is None:
            self.batch_size = default_batch_size(self.preset, self.task)
        self.validate()

    # ------------------------------------------------------------ validation
    def validate(self) -> None:
        if self.init_from is not None and self.resume is not None and "init_from" in self.explicit:
            raise ConfigError("--init-from starts a new run from GPT-2's weights; --resume continues one: "
                              "use one of them")
        if self.init_from is not None and self.tokenizer is not None:
            raise ConfigError(f"--init-from takes the tokenizer of the model it names; drop --tokenizer "
                              f"{self.tokenizer}")
        if self.data is not None and self.corpus is not None:
            raise ConfigError("use either --data or --corpus, not both")
        if self.data is not None and len(self.data) == 0:
            raise ConfigError("--data needs at least one path")
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        if self.tokenizer is not None and self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"unknown tokenizer {self.tokenizer!r}; choose gpt2 or char")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"unknown device {self.device!r}; choose one of: {', '.join(DEVICES)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {self.dtype!r}; choose one of: {', '.join(DTYPES)}")
        if self.lora_rank is not None and self.optimizer == "muon":
            raise ConfigError("--optimizer muon orthogonalises whole weight matrices; LoRA trains low-rank "
                              "adapters of frozen ones: use --optimizer adamw with --lora-rank")
        for opt in OPTIONS:  # a task's own options, set for another task, would be ignored: say so
            if opt.tasks and self.task not in opt.tasks and getattr(self, opt.name) != opt.default:
                raise ConfigError(f"{opt.flag} applies to --task {' or '.join(opt.tasks)}; this run is --task "
                                  f"{self.task}")
        for name in ("n_layers", "n_heads", "d_model", "context", "stride", "max_steps", "warmup_steps",
                     "lr_decay_steps", "log_interval", "threads", "lora_rank"):
            _check_int(name, getattr(self, name), minimum=0 if name == "warmup_steps" else 1, optional=True)
        for name in ("epochs", "batch_size", "grad_accum", "eval_interval", "eval_batches", "sample_tokens",
                     "save_interval", "keep_last"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("seed", self.seed, minimum=0)
        if self.dropout is not None and not (_is_number(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("lr", "min_lr"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and value > 0 and math.isfinite(value)):
                raise ConfigError(f"--{_flag(name)} must be a positive number, got {value!r}")
        if self.lr is not None and self.min_lr is not None and self.min_lr > self.lr:
            raise ConfigError(f"--min-lr ({self.min_lr}) must not exceed --lr ({self.lr})")
        if not (_is_number(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"--weight-decay must be zero or positive, got {self.weight_decay!r}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not (_is_number(value) and 0.0 <= value < 1.0):
                raise ConfigError(f"--{name} must be in [0, 1), got {value!r}")
        if self.bias is not None and not isinstance(self.bias, bool):
            raise ConfigError(f"bias must be true or false, got {self.bias!r}")
        if not (_is_number(self.grad_clip) and self.grad_clip >= 0):
            raise ConfigError(f"--grad-clip must be zero (off) or positive, got {self.grad_clip!r}")
        if not (_is_number(self.val_fraction) and 0.0 < self.val_fraction < 0.5):
            raise ConfigError(f"--val-fraction must be between 0 and 0.5, got {self.val_fraction!r}")
        if self.run_name is not None and (not self.run_name or "/" in self.run_name or self.run_name.startswith(".")):
            raise ConfigError(f"--run-name must be a plain folder name, got {self.run_name!r}")
        if self.sample_prompt is not None and not isinstance(self.sample_prompt, str):
            raise ConfigError("--sample-prompt must be text")
        try:  # model dims checked now (vocab is only known later; any value shows shape errors)
            preset_config(self.preset, 256, **self.model_overrides())
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    # --------------------------------------------------------------- helpers
    @property
    def tokenizer_name(self) -> str:
        if self.init_from:
            return "gpt2"
        return self.tokenizer or preset_default("tokenizer", self.preset).value

    def model_overrides(self) -> dict[str, Any]:
        """Overrides for ``preset_config`` (``context`` maps to ``context_length``)."""
        return {
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "d_model": self.d_model,
            "context_length": self.context,
            "dropout": self.dropout,
            "bias": self.bias,
            "qkv_bias": False if self.bias is False else None,  # --no-bias: none anywhere, as nanoGPT's bias=False
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("explicit")
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], explicit: tuple[str, ...] = ()) -> "TrainConfig":
        known = {f.name for f in fields(cls)} - {"explicit"}
        clean: dict[str, Any] = {}
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(f"unknown option {key!r}; known options: {', '.join(sorted(_flag(k) for k in known))}")
            clean[name] = value
        if isinstance(clean.get("data"), str):
            clean["data"] = [clean["data"]]
        try:
            return cls(**clean, explicit=tuple(explicit))
        except TypeError as exc:  # pragma: no cover - defensive
            raise ConfigError(str(exc)) from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a ``--config`` TOML file; keys use the CLI's option names."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML (not UTF-8 text: byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {p} ({exc.strerror or exc})") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):  # allow [train]/[model] tables; keys stay flat
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"--{_flag(name)} must be a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"--{_flag(name)} must be at least {minimum}, got {value}")

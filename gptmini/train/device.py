"""Device and precision choices, and the peak FLOP/s used for MFU."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from gptmini.errors import ConfigError
from gptmini.model.config import ModelConfig

# Dense bf16 tensor-core peaks from the vendors' datasheets (FLOP/s).
DATASHEET_BF16_PEAK = {
    "H200": 989e12,
    "H100": 989e12,  # SXM; the PCIe card is lower (756e12)
    "A100": 312e12,
    "L40S": 362e12,
    "A10": 125e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
}


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain float32
    use_scaler: bool  # fp16 needs a GradScaler

    @property
    def type(self) -> str:
        return self.device.type

    @property
    def dtype_name(self) -> str:
        return "float32" if self.autocast_dtype is None else str(self.autocast_dtype).replace("torch.", "")

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU here (try --device cpu)")
        return torch.device(name)
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise ConfigError("--device mps was asked for, but Apple's Metal backend is not available here")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")


# x86 CPU flags (Linux /proc/cpuinfo) of bf16 arithmetic in hardware: AVX-512 BF16, and AMX's bf16 tiles.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Does this CPU compute in bf16 natively? Read from the ``flags`` of ``/proc/cpuinfo`` (or ``cpuinfo``).
    Where that cannot be read (macOS, Windows) the answer is no: without native bf16, bf16 autocast is
    emulated and slower than fp32, so ``--dtype auto`` must never pick it there."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as fh:
                cpuinfo = fh.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags") and ":" in line:
            return any(flag in line.split(":", 1)[1].split() for flag in NATIVE_BF16_FLAGS)
    return False


# Where bf16 autocast trains faster than fp32 on a CPU with native bf16 (bench/README_demo.md, "levers"): a
# GPT-2-size vocabulary at 256 wide and more (1.2x alone, 2.0x compiled, at 4 layers, context 256). On the
# char-level demo shapes it is slower (0.9x), so there fp32 stays.
CPU_BF16_MIN_VOCAB = 1024
CPU_BF16_MIN_WIDTH = 256


def cpu_prefers_bf16(model: ModelConfig | None) -> bool:
    """Would bf16 autocast train ``model`` faster than fp32 on this CPU? Only with native bf16."""
    if model is None or model.vocab_size < CPU_BF16_MIN_VOCAB or model.d_model < CPU_BF16_MIN_WIDTH:
        return False
    return cpu_has_native_bf16()


def choose_precision(device: torch.device, dtype: str = "auto", model: ModelConfig | None = None) -> DeviceChoice:
    """The precision to train ``model`` in. ``auto``: bf16 on a GPU that has it (else fp16 with a loss
    scaler); on a CPU bf16 only where it computes bf16 natively and the model is one it speeds up; fp32
    elsewhere."""
    if dtype == "auto" and device.type == "cpu":
        return DeviceChoice(device, torch.bfloat16 if cpu_prefers_bf16(model) else None, False)
    if dtype == "float32" or (dtype == "auto" and device.type != "cuda"):
        return DeviceChoice(device, None, False)
    if device.type == "cpu" and dtype in ("bfloat16", "float16"):
        return DeviceChoice(device, torch.bfloat16 if dtype == "bfloat16" else torch.float16, False)
    if device.type == "cuda":
        if dtype in ("auto", "bfloat16") and torch.cuda.is_bf16_supported():
            return DeviceChoice(device, torch.bfloat16, False)
        if dtype == "bfloat16":
            raise ConfigError("this GPU does not support bfloat16; use --dtype float16 or float32")
        return DeviceChoice(device, torch.float16, True)
    if device.type == "mps":
        return DeviceChoice(device, None if dtype == "auto" else getattr(torch, dtype), False)
    return DeviceChoice(device, None, False)


def setup_backends(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def peak_flops(device: torch.device) -> float | None:
    """Datasheet bf16 peak for a known GPU, else ``None`` (MFU not reported)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in DATASHEET_BF16_PEAK.items():
        if key in name:
            if key == "H100" and "PCIe" in name:
                return 756e12
            return value
    return None

"""Where and in which precision a job computes: the accelerator, the number of devices, and ``precision: auto``.

``precision: auto`` picks bf16 mixed precision where the hardware runs bf16 natively and fp32 elsewhere: bf16
autocast on a CPU without bf16 units is emulated and far slower than fp32, so ``auto`` checks the CPU's flags
instead of assuming (measurements: experiments/performance/)."""

from __future__ import annotations

from pathlib import Path

import torch

from reslab.errors import UserError
from reslab.schema import check_choice

# Lightning's names for what each user-facing value means.
PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in CPU_BF16_FLAGS)


def resolve_precision(precision: str | int, accelerator: str) -> str:
    """Map the config's ``precision`` to a Lightning precision string for ``accelerator`` (cpu/gpu)."""
    value = str(precision)
    if value == "auto":
        if accelerator == "gpu":
            return "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) else "32-true"
        return "bf16-mixed" if cpu_has_native_bf16() else "32-true"
    check_choice("runtime.precision", value)
    if value == "16" and accelerator != "gpu":
        raise UserError("precision=16 (fp16 mixed) needs a GPU; use runtime.precision=32 or auto on a CPU")
    return PRECISIONS[value]


def resolve_accelerator(accelerator: str) -> str:
    """``auto`` -> ``gpu`` if CUDA is available, else ``cpu``; anything else must be cpu or gpu."""
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    check_choice("trainer.accelerator", accelerator)
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise UserError("trainer.accelerator=gpu but no CUDA GPU is visible; use trainer.accelerator=auto or cpu")
    return accelerator


def resolve_devices(devices: int, strategy: str, accelerator: str) -> int:
    """The number of processes training the run; a GPU run needs that many GPUs."""
    check_choice("trainer.strategy", strategy)
    if accelerator == "gpu" and devices > torch.cuda.device_count():
        raise UserError(
            f"trainer.devices={devices} but {torch.cuda.device_count()} GPU(s) are visible; lower trainer.devices"
        )
    return devices

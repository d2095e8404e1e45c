"""``precision: auto``: bf16 mixed precision where the hardware runs bf16 natively, fp32 elsewhere.

bf16 autocast on a CPU without native bf16 units is emulated and slower than fp32 (on the project's 2-core
AMD EPYC dev machine residual-20 trained 14x slower; experiments/performance/), so ``auto`` checks for the
instructions instead of assuming.
"""

from __future__ import annotations

from pathlib import Path

import torch

from reslab.errors import UserError

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
    if value not in PRECISIONS:
        raise UserError(f"unknown precision {value!r}; choose one of: auto, 32, bf16, 16 (trainer.precision=auto)")
    if value == "16" and accelerator != "gpu":
        raise UserError("precision=16 (fp16 mixed) needs a GPU; use trainer.precision=32 or auto on a CPU")
    return PRECISIONS[value]


def resolve_accelerator(accelerator: str) -> str:
    """``auto`` -> ``gpu`` if CUDA is available, else ``cpu``; anything else must be cpu or gpu."""
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator not in ("cpu", "gpu"):
        raise UserError(f"unknown accelerator {accelerator!r}; choose one of: auto, cpu, gpu")
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise UserError("trainer.accelerator=gpu but no CUDA GPU is visible; use trainer.accelerator=auto or cpu")
    return accelerator

"""Refusing, in one line, a run that cannot fit in the device's memory, before it exhausts the machine."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from reslab.errors import UserError


def memory_needed(cfg, in_channels: int, image_size: int) -> dict[str, int]:
    """A rough upper estimate of the bytes a run holds at once, by part (see `check_memory`)."""
    width, n, batch = cfg.model.width, (cfg.depth - 2) // 6, cfg.dataset.batch_size
    # Each 3x3 layer keeps its conv, BN and ReLU outputs (fp32) for the backward pass, at its stage's size.
    per_image = sum(2 * n * width * 2**s * math.ceil(image_size / 2**s) ** 2 for s in range(3)) + width * image_size**2
    params = sum(9 * (width * 2**s) ** 2 * 2 * n for s in range(3))
    need = {"activations": 3 * 4 * batch * per_image, "weights, gradients and momentum": 3 * 4 * params}
    if cfg.dataset.name == "synthetic":  # generated in float32 before it is stored as uint8
        images = cfg.dataset.synthetic_train + cfg.dataset.synthetic_test
        need["synthetic images"] = 9 * images * in_channels * image_size**2
    return need


def memory_available(accelerator: str) -> int | None:
    """Free memory of the device the run trains on, in bytes (None where it cannot be read)."""
    if accelerator == "gpu":
        return torch.cuda.mem_get_info()[0]
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    kb = next((int(line.split()[1]) for line in lines if line.startswith("MemAvailable:")), None)
    return kb * 1024 if kb is not None else None


def check_memory(cfg, accelerator: str, in_channels: int, image_size: int) -> None:
    """Refuse, in one line and with the estimate, a run whose sizes cannot fit in the device's free memory,
    instead of letting it exhaust the machine. The estimate errs high; a run near the limit may still fit."""
    need = memory_needed(cfg, in_channels, image_size)
    available = memory_available(accelerator)
    if available is None or sum(need.values()) <= available:
        return
    parts = ", ".join(f"{k} {v / 2**30:.1f}" for k, v in need.items())
    raise UserError(
        f"this run needs about {sum(need.values()) / 2**30:.1f} GiB ({parts}) but {available / 2**30:.1f} GiB is "
        f"free on the {accelerator}; lower dataset.batch_size, model.width, depth or dataset.synthetic_train"
    )

"""Datasheet peaks of common NVIDIA GPUs, dense (no structured sparsity), in TFLOP/s, looked up by device name.

A GPU's clock and tensor-core rates cannot be read from the device the way a CPU's flags can, so its peak is
the vendor's figure. Datasheets print the tensor-core rates with 2:4 sparsity; these are half of those,
which is what a dense convolution can reach. bf16 and fp16 (with fp32 accumulation, as autocast uses) have
the same rate on every card here; fp32 is the plain CUDA-core rate, tf32 the tensor-core rate for fp32 data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuDatasheet:
    model: str  # the product the figures are for: "H100 SXM"
    pattern: str  # a regex matched against the normalised device name (see `normalise`)
    fp32: float
    tf32: float
    bf16: float

    def tflop_s(self, dtype: str) -> float:
        """The dense peak for ``dtype`` (fp32, tf32, bf16 or fp16)."""
        return {"fp32": self.fp32, "tf32": self.tf32, "bf16": self.bf16, "fp16": self.bf16}[dtype]


# First match wins, so the more specific patterns come first. NVL and other variants without a row fall
# through to "unknown" rather than borrowing a sibling's figures.
DATASHEETS = (
    GpuDatasheet("H200 SXM", r"\bh200\b(?!.*\bnvl\b)", fp32=67.0, tf32=494.7, bf16=989.4),
    GpuDatasheet("H100 SXM", r"\bh100\b(?!.*\bnvl\b).*\b(sxm\d?|hbm3)\b", fp32=67.0, tf32=494.7, bf16=989.4),
    GpuDatasheet("H100 PCIe", r"\bh100\b.*\bpcie\b", fp32=51.2, tf32=378.0, bf16=756.0),
    GpuDatasheet("A100 SXM", r"\ba100\b.*\bsxm\d?\b", fp32=19.5, tf32=156.0, bf16=312.0),
    GpuDatasheet("A100 PCIe", r"\ba100\b.*\bpcie\b", fp32=19.5, tf32=156.0, bf16=312.0),
    GpuDatasheet("L40S", r"\bl40s\b", fp32=91.6, tf32=183.0, bf16=362.05),
    GpuDatasheet("L4", r"\bl4$", fp32=30.3, tf32=60.0, bf16=121.0),
    GpuDatasheet("GeForce RTX 4090", r"\brtx 4090$", fp32=82.6, tf32=82.6, bf16=165.2),
    GpuDatasheet("A10", r"\ba10$", fp32=31.2, tf32=62.5, bf16=125.0),
)


def normalise(device_name: str) -> str:
    """``NVIDIA A100-SXM4-80GB`` -> ``nvidia a100 sxm4 80gb``: lower case, words split by single spaces."""
    return " ".join(re.split(r"[\s\-_]+", device_name.strip().lower()))


def lookup(device_name: str) -> GpuDatasheet | None:
    """The datasheet row for a device name as CUDA reports it, or None for a GPU not in the table."""
    name = normalise(device_name)
    return next((row for row in DATASHEETS if re.search(row.pattern, name)), None)

"""The hardware's theoretical peak FLOP rate in the training dtype, and a one-line account of how it was derived.

CPU: cores × clock × FLOPs per cycle per core. The cores are those torch computes on (its thread count,
at most the physical cores: SMT siblings share one core's vector units). The clock is the maximum from
cpufreq or ``lscpu``, else the ``cpu MHz`` of ``/proc/cpuinfo``, which is the current clock (a VM often
shows only that; boost may be higher). FLOPs per cycle follow from the CPU's flags: vector lanes × FMA
units × 2 (an FMA is a multiply and an add). How many FMA units a core has is not in the flags, so it is an
assumption, stated in the derivation: 2, or 1 for AVX-512 on AMD's Zen 4, or ``--fma-units``. GPU: the
datasheet figure for the device (`gpu_datasheets`). A dtype the hardware only emulates, or a device with no
known figure, gets no peak, and says why.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import torch

from reslab.bench.gpu_datasheets import lookup

# Assumed FMA pipes per core; some parts have one (Xeon Silver/Bronze for AVX-512: --fma-units 1 there).
FMA_UNITS = 2
ZEN4_FAMILY = 25  # AMD family 19h; its AVX-512 cores (Zen 4) run a 512-bit FMA as two 256-bit halves
AMX_BF16_FLOP_PER_CYCLE = 1024  # Intel's published AMX figure per core for Sapphire Rapids
CPUINFO = Path("/proc/cpuinfo")
CPUFREQ_MAX = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")


@dataclass(frozen=True)
class Peak:
    dtype: str  # fp32, tf32, bf16 or fp16: the arithmetic the convolutions run in
    gflop_s: float | None  # None: no theoretical figure (emulated dtype, unknown GPU); `derivation` says why
    derivation: str  # one line: the product and where each factor came from
    facts: dict = field(default_factory=dict)  # the factors themselves, for the JSON

    def as_dict(self) -> dict:
        basis = "theoretical" if self.gflop_s is not None else None
        return {
            "dtype": self.dtype,
            "gflop_s": self.gflop_s,
            "basis": basis,
            "derivation": self.derivation,
        } | self.facts


@dataclass(frozen=True)
class Clock:
    ghz: float
    source: str  # where the figure was read, and what it means


def training_dtype(precision: str, accelerator: str) -> str:
    """The arithmetic a Lightning precision runs the convolutions in on ``accelerator`` (cpu/gpu)."""
    if precision == "bf16-mixed":
        return "bf16"
    if precision == "16-mixed":
        return "fp16"
    # cuDNN runs fp32 convolutions on tensor cores as TF32 unless told not to (torch's default allows it).
    return "tf32" if accelerator == "gpu" and torch.backends.cudnn.allow_tf32 else "fp32"


def cpu_flags(cpuinfo: str) -> set[str]:
    """The ``flags`` of the first processor in a ``/proc/cpuinfo`` text (empty off x86)."""
    match = re.search(r"^flags\s*:(.*)$", cpuinfo, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def physical_cores(cpuinfo: str) -> int | None:
    """Distinct (package, core) pairs in ``/proc/cpuinfo``; None where it does not list them."""
    cores = set()
    for block in cpuinfo.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return len(cores) or None


def parse_clock(cpuinfo: str, cpufreq_max_khz: str | None = None, lscpu: str | None = None) -> Clock | None:
    """The clock from the best source given: cpufreq's maximum, lscpu's ``CPU max MHz``, then ``cpu MHz``."""
    if cpufreq_max_khz and cpufreq_max_khz.strip().isdigit() and int(cpufreq_max_khz) > 0:
        return Clock(int(cpufreq_max_khz) / 1e6, f"max, from {CPUFREQ_MAX}")
    if lscpu and (match := re.search(r"^CPU max MHz:\s*([\d.]+)", lscpu, re.MULTILINE)):
        return Clock(float(match.group(1)) / 1e3, "max, from lscpu 'CPU max MHz'")
    if match := re.search(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.MULTILINE):
        return Clock(
            float(match.group(1)) / 1e3, "current, from /proc/cpuinfo 'cpu MHz' (no max listed; boost may be higher)"
        )
    return None


def machine_clock(cpuinfo: str) -> Clock | None:
    """This machine's clock, from cpufreq, lscpu or ``/proc/cpuinfo``, in that order."""
    khz = CPUFREQ_MAX.read_text() if CPUFREQ_MAX.exists() else None
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        lscpu = None
    return parse_clock(cpuinfo, khz, lscpu)


def fma_units_of(cpuinfo: str) -> tuple[int, str]:
    """The FMA units per core to assume for the widest vectors of this CPU, and on what grounds."""
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", cpuinfo, re.MULTILINE)
    family = re.search(r"^cpu family\s*:\s*(\d+)", cpuinfo, re.MULTILINE)
    zen4 = vendor and vendor.group(1) == "AuthenticAMD" and family and int(family.group(1)) == ZEN4_FAMILY
    if zen4 and "avx512f" in cpu_flags(cpuinfo):
        return 1, "Zen 4: a 512-bit FMA is two 256-bit halves"
    return FMA_UNITS, "assumed"


def flop_per_cycle(flags: set[str], dtype: str, fma_units: int, basis: str = "assumed") -> tuple[int | None, str]:
    """FLOPs per cycle per core for ``dtype`` on a CPU with ``flags`` and ``fma_units`` FMA units per core (on
    the grounds of ``basis``), and how that number is made up."""
    units = f"{fma_units} FMA unit{'s' if fma_units != 1 else ''} ({basis})"
    if dtype == "bf16":
        if "amx_bf16" in flags:
            return AMX_BF16_FLOP_PER_CYCLE, "AMX-BF16: Intel's per-core figure for Sapphire Rapids"
        if "avx512_bf16" in flags:
            return 16 * 2 * fma_units * 2, f"AVX512_BF16: 16 fp32 lanes × 2 bf16 products each × {units} × 2"
        return None, "bf16 is emulated on this CPU (no avx512_bf16 or amx_bf16 flag): no peak"
    if dtype != "fp32":
        return None, f"no CPU peak for {dtype}"
    if "avx512f" in flags:
        return 16 * fma_units * 2, f"AVX-512: 16 fp32 lanes × {units} × 2"
    if "fma" in flags:
        return 8 * fma_units * 2, f"AVX2/FMA: 8 fp32 lanes × {units} × 2"
    # Without FMA a core issues one vector multiply and one vector add per cycle.
    if "avx" in flags:
        return 8 * 2, "AVX, no FMA: 8 fp32 lanes × (1 multiply + 1 add)"
    if "sse" in flags or "sse2" in flags:
        return 4 * 2, "SSE, no FMA: 4 fp32 lanes × (1 multiply + 1 add)"
    return None, "no x86 vector flags in /proc/cpuinfo: no peak"


def cpu_peak(dtype: str, cpuinfo: str, clock: Clock | None, threads: int, fma_units: int | None = None) -> Peak:
    """cores × clock × FLOPs/cycle for a ``/proc/cpuinfo`` text, a clock and torch's thread count;
    ``fma_units`` given replaces the assumption."""
    physical = physical_cores(cpuinfo) or os.cpu_count() or 1
    cores = max(1, min(threads, physical))
    fma_units, basis = fma_units_of(cpuinfo) if fma_units is None else (fma_units, "given")
    fpc, how = flop_per_cycle(cpu_flags(cpuinfo), dtype, fma_units, basis)
    facts = {
        "device": "cpu",
        "cores": cores,
        "torch_threads": threads,
        "physical_cores": physical,
        "clock_ghz": clock.ghz if clock else None,
        "clock_source": clock.source if clock else None,
        "flop_per_cycle_per_core": fpc,
        "flop_per_cycle_how": how,
        "fma_units": fma_units,
        "fma_units_basis": basis,
    }
    if fpc is None:
        return Peak(dtype, None, f"no theoretical {dtype} peak: {how}", facts)
    if clock is None:
        return Peak(dtype, None, f"no theoretical {dtype} peak: no clock in cpufreq, lscpu or /proc/cpuinfo", facts)
    gflop_s = cores * clock.ghz * fpc
    derivation = (
        f"{cores} cores × {clock.ghz:.2f} GHz × {fpc} FLOP/cycle ({how}) = {gflop_s:.1f} GFLOP/s {dtype}, "
        f"theoretical; clock: {clock.source}"
    )
    return Peak(dtype, gflop_s, derivation, facts)


def gpu_peak(dtype: str, device_name: str) -> Peak:
    """The datasheet's dense figure for ``device_name`` in ``dtype``, or no peak for a GPU not in the table."""
    row = lookup(device_name)
    facts = {"device": "gpu", "gpu": device_name, "datasheet": row.model if row else None}
    if row is None:
        why = f"no datasheet figure for {device_name!r} (reslab/bench/gpu_datasheets.py); see the matmul rate"
        return Peak(dtype, None, f"no theoretical {dtype} peak: {why}", facts)
    tflop_s = row.tflop_s(dtype)
    units = "CUDA cores" if dtype == "fp32" else "tensor cores, dense"
    note = " (fp32 convolutions run as TF32: torch.backends.cudnn.allow_tf32)" if dtype == "tf32" else ""
    derivation = f"{row.model} datasheet, {units}: {tflop_s:g} TFLOP/s {dtype}, theoretical{note}"
    return Peak(dtype, tflop_s * 1e3, derivation, facts)


def theoretical_peak(
    precision: str, accelerator: str, fma_units: int | None = None, clock_ghz: float | None = None
) -> Peak:
    """This machine's peak for a Lightning ``precision`` on ``accelerator``; ``fma_units`` and ``clock_ghz``
    replace the assumed FMA units and the clock read from the machine."""
    dtype = training_dtype(precision, accelerator)
    if accelerator == "gpu":
        return gpu_peak(dtype, torch.cuda.get_device_name())
    cpuinfo = CPUINFO.read_text() if CPUINFO.exists() else ""
    clock = Clock(clock_ghz, "given (--cpu-clock-ghz)") if clock_ghz else machine_clock(cpuinfo)
    return cpu_peak(dtype, cpuinfo, clock, torch.get_num_threads(), fma_units)

"""Where and how a job computes: accelerator, precision, memory layout and compilation of the net.

``precision: auto`` picks bf16 mixed precision where the hardware runs bf16 natively and fp32 elsewhere: bf16
autocast on a CPU without bf16 units is emulated and far slower than fp32, so ``auto`` checks the CPU's flags
instead of assuming (measurements: experiments/performance/).

``trainer.channels_last`` stores weights and activations as NHWC, which oneDNN (CPU) and cuDNN (GPU) run faster;
the data module converts each batch after normalising it, so every conv sees NHWC. ``trainer.compile`` compiles
the net in place with ``torch.compile`` (``nn.Module.compile``), so parameter names, checkpoints and the
instruments' layer names are those of the uncompiled net: a compiled run resumes uncompiled and vice versa.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn

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


def check_strategy(strategy: str) -> None:
    if strategy not in ("auto", "ddp"):
        raise UserError(
            f"unknown trainer.strategy={strategy!r}; choose auto or ddp (reslab starts the processes itself, so "
            f"Lightning's ddp_spawn and its re-run of the command line are not used)"
        )


def check_threads(setting: object) -> None:
    if setting != "auto" and not (isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1):
        raise UserError(f"trainer.threads={setting!r}: choose auto or a positive number of threads")


def resolve_devices(devices: int, strategy: str, accelerator: str) -> int:
    """The number of processes training the run; a GPU run needs that many GPUs."""
    check_strategy(strategy)
    if accelerator == "gpu" and devices > torch.cuda.device_count():
        raise UserError(
            f"trainer.devices={devices} but {torch.cuda.device_count()} GPU(s) are visible; lower trainer.devices"
        )
    return devices


def concurrent_jobs() -> int:
    """How many jobs the launcher runs at once on this machine: joblib's ``n_jobs`` (-1 = one per core), else 1."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 1
    n_jobs = HydraConfig.get().launcher.get("n_jobs")
    if not isinstance(n_jobs, int) or n_jobs == 0:
        return 1
    return n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)


def job_number() -> int:
    """The job's number in its sweep (Hydra's ``job.num``), 0 outside a sweep."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 0
    return int(HydraConfig.get().job.get("num", 0) or 0)


def gpu_for_job(job: int, concurrent: int, visible: int) -> int:
    """The GPU a one-device job trains on. Where a launcher runs several jobs at once on a machine with several
    GPUs, job k takes GPU k mod the GPUs visible, so the jobs spread over them instead of all sharing the first
    (round robin by job number: a long job can share its GPU while another is idle); else GPU 0. A cluster
    launcher gives each job its own GPU, which it sees as the only one."""
    return job % visible if concurrent > 1 and visible > 1 else 0


def threads_per_process(setting: object, processes: int = 1) -> int | None:
    """torch's CPU threads for each process of a job; None: torch's default. ``auto``: the cores this process may
    use, shared among the jobs the launcher runs at once and the run's own processes (None when neither shares
    them); a number: that many."""
    check_threads(setting)
    if setting == "auto":
        share, cores = concurrent_jobs() * processes, usable_cores()
        return max(1, cores // share) if share > 1 or cores < len(os.sched_getaffinity(0)) else None
    return int(setting)


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, and no more than SLURM granted the job's task (a cluster
    without CPU binding, ``TaskPlugin=task/none``, leaves every core visible to a 1-CPU job)."""
    cores = len(os.sched_getaffinity(0))
    granted = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(cores, int(granted)) if granted.isdigit() and int(granted) > 0 else cores


def set_threads(threads: int | None) -> None:
    """Set in the job itself: joblib reuses its worker processes, so an environment variable read once at import
    would not follow a change of ``n_jobs``."""
    if threads is not None:
        torch.set_num_threads(threads)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(value: object) -> str | None:
    """The config's ``trainer.compile`` as a ``torch.compile`` mode, or None for no compilation."""
    if value is None or value is False or value in ("false", "off", "none"):
        return None
    if value is True:
        return "default"
    if value not in COMPILE_MODES:
        raise UserError(f"unknown trainer.compile={value!r}; choose false or one of: {', '.join(COMPILE_MODES)}")
    return str(value)


def prepare_net(net: nn.Module, channels_last: bool, compile: object = False) -> nn.Module:
    """Lay out ``net`` as channels-last and compile it, in place, as configured; returns it."""
    mode = compile_mode(compile)
    if channels_last:
        net.to(memory_format=torch.channels_last)  # later .to(device) preserves the layout
    if mode is not None:
        net.compile(mode=mode)
    return net


def memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-d input batch in the layout the net was prepared for."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def is_compiled(net: nn.Module) -> bool:
    # nn.Module.compile() stores the compiled call here; torch has no public query for an in-place compile.
    return getattr(net, "_compiled_call_impl", None) is not None


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

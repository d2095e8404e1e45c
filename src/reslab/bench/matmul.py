"""The measured rate of a large square matrix product in the training dtype: a practical reference beside the
theoretical peak (what one well-tuned kernel reaches on this machine, not a bound on what convolutions reach).
"""

from __future__ import annotations

import torch
from torch.utils import benchmark

from reslab.training.accelerator import cpu_has_native_bf16

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def matrix_size(dtype: str, accelerator: str) -> int:
    """Large enough to be compute-bound; smaller where the CPU only emulates bf16, which is orders of magnitude
    slower, so the reference takes seconds rather than minutes."""
    if accelerator == "gpu":
        return 8192
    return 512 if dtype == "bf16" and not cpu_has_native_bf16() else 2048


def matmul_rate(dtype: str, accelerator: str, min_run_time: float = 1.0) -> dict:
    """GFLOP/s of ``a @ b`` (n×n, random: zeros run faster), timed with ``torch.utils.benchmark.Timer``: its
    own warm-up, torch's thread count and accelerator synchronisation. The best run and the median."""
    device = "cuda" if accelerator == "gpu" else "cpu"
    n = matrix_size(dtype, accelerator)
    a, b = (torch.randn(n, n, device=device, dtype=DTYPES[dtype]) for _ in range(2))
    before = torch.get_float32_matmul_precision()
    # The product in the math mode the convolutions use: TF32 where cuDNN is allowed it, full fp32 otherwise.
    torch.set_float32_matmul_precision("high" if dtype == "tf32" else "highest")
    try:
        timer = benchmark.Timer("a @ b", globals={"a": a, "b": b}, num_threads=torch.get_num_threads())
        timer.timeit(1)  # explicit warm-up (oneDNN/cuBLAS pick and load their kernels on the first products)
        measured = timer.blocked_autorange(min_run_time=min_run_time)
    finally:
        torch.set_float32_matmul_precision(before)
    flop = 2 * n**3
    return {
        "dtype": dtype,
        "n": n,
        "best_gflop_s": flop / min(measured.times) / 1e9,
        "median_gflop_s": flop / measured.median / 1e9,
        "runs": len(measured.times),
        "products_per_run": measured.number_per_run,
        "threads": torch.get_num_threads(),
        "timer": "torch.utils.benchmark.Timer.blocked_autorange",
    }

"""Time one SGD step (momentum 0.9, weight decay 1e-4, the paper's) on each net: torch's default kernel against
the fused one reslab uses, and check that both give the same parameters after the same steps.

    .venv/bin/python experiments/performance/optimizer_step.py [cpu|cuda]

Prints a table: ms per optimiser step with each kernel, and the largest parameter difference after 20 steps.
"""

from __future__ import annotations

import sys
import time

import torch

from reslab.models import CifarNet

STEPS, WARMUP = 200, 5


def time_steps(depth: int, fused: bool | None, device: str) -> tuple[float, list[torch.Tensor]]:
    torch.manual_seed(0)
    net = CifarNet(depth, "A", 3, 10, 16).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, fused=fused)
    grads = [torch.randn_like(p) for p in net.parameters()]  # random, not zeros: the same work as training
    for p, g in zip(net.parameters(), grads):
        p.grad = g
    for _ in range(20):
        optimizer.step()
    after_20 = [p.detach().clone() for p in net.parameters()]
    for _ in range(WARMUP):
        optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(STEPS):
        optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / STEPS, after_20


def main() -> None:
    device = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    print(
        f"device {device} ({torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {STEPS} steps after {WARMUP} warm-up"
    )
    print(f"{'depth':>5} {'params':>9} {'default ms':>10} {'fused ms':>9} {'speed-up':>8} {'max |diff|':>10}")
    for depth in (20, 56, 110):
        default, p_default = time_steps(depth, None, device)
        fused, p_fused = time_steps(depth, True, device)
        diff = max((a - b).abs().max().item() for a, b in zip(p_default, p_fused))
        params = sum(p.numel() for p in p_default)
        speedup = default / fused
        print(f"{depth:>5} {params:>9,} {1000 * default:>10.2f} {1000 * fused:>9.2f} {speedup:>7.1f}x {diff:>10.2e}")


if __name__ == "__main__":
    main()

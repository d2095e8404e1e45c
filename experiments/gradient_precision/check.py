"""How exact are the per-layer gradient norms of a very deep plain net at initialisation, in fp32?

    .venv/bin/python experiments/gradient_precision/check.py [--depth 110] [--model plain]

Builds the default config's net (seed 0) and its first training batch, computes every conv/linear weight's
gradient norm in float64 (the reference), in float32 NCHW and in float32 channels-last, and prints the
relative error of each float32 version against float64: for the first conv, and the median and maximum over
layers. The instruments record float32 norms; this says how many of their digits to believe.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from reslab.build import build_job
from reslab.config import compose_config
from reslab.models import weight_layers


def grad_norms(depth: int, model: str, channels_last: bool, dtype: torch.dtype) -> torch.Tensor:
    cfg = compose_config(
        [f"model={model}", f"depth={depth}", f"runtime.channels_last={channels_last}"], output_dir="unused"
    )
    datamodule, system = build_job(cfg)
    net = system.net.to(dtype)
    x, y = next(iter(datamodule.train_batches("cpu")))
    F.cross_entropy(net(datamodule.normalize(x).to(dtype)), y).backward()
    return torch.stack([m.weight.grad.double().norm() for _, m in weight_layers(net)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=110)
    parser.add_argument("--model", default="plain")
    args = parser.parse_args()
    reference = grad_norms(args.depth, args.model, False, torch.float64)
    print(
        f"{args.model}-{args.depth} at initialisation, first batch; float64 first conv {reference[0]:.4g}, "
        f"classifier {reference[-1]:.4g}"
    )
    for name, channels_last in (("float32 NCHW", False), ("float32 channels-last", True)):
        norms = grad_norms(args.depth, args.model, channels_last, torch.float32)
        error = (norms - reference).abs() / reference
        print(
            f"{name:22} first conv {norms[0]:.4g} (error {100 * error[0]:.1f}%), "
            f"median error {100 * error.median():.1f}%, max {100 * error.max():.1f}%"
        )


if __name__ == "__main__":
    main()

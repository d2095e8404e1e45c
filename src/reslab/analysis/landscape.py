"""Loss landscape (Li, Xu, Taylor, Studer and Goldstein 2018): the training loss around the trained weights along
filter-normalised random directions.

With θ the trained weights and d1, d2, ... random directions, it measures the mean cross-entropy (and the error) on
the first ``--images`` training images at ``θ + α dk`` for ``--points`` values of α evenly spaced in [-span, span]
along each of ``--directions`` directions (1-D), and at ``θ + α d1 + β d2`` on a ``--grid`` × ``--grid`` square of
the same extent (2-D); α = β = 0, the trained net itself, is on both grids (the counts are odd). The 2-D scan's
lines β = 0 and α = 0 are the 1-D curves along d1 and d2 at the coarser spacing. One random direction is one draw:
along eight, the 1-D loss ratios of one net differed by up to 16× (issue 23), so the summary gives their spread. The
images are the first N of the run's training split, normalised as in training, without augmentation, and every point
of a scan is measured on the same ones.

Directions, as in the paper: each weight's direction is drawn from N(0, 1) with the weight's shape, then every
filter (one output channel's slice of a conv weight, one row of the classifier's weight) is rescaled to the
Frobenius norm of the same filter of θ, so that a step of α = 1 changes every filter by as much as its own size.
This removes the scale invariance that BN gives a conv's weights, which would otherwise make nets with larger
weights look flatter. Biases and BN's scales and shifts get a direction of zero (the paper's ``ignore='biasbn'``),
so they stay at their trained values, and BN runs in evaluation mode with its running statistics as trained (not
re-estimated at each point): the landscape is the one of the function the trained net computes at test time.
Without BN (``model.norm=none``) the convs' biases are likewise held fixed.

The draws come from a generator seeded by ``--seed``, the direction's index and the parameter's name, so plain and
option-A residual nets of one depth (the same parameter names and shapes) get the same random draws before the
rescaling, and a layer's draw does not depend on which other layers the net has. The two arms are then compared
along the same random directions, each scaled to its own filters.

The summary's sharpness measures are ratios to the loss at θ: the 1-D curves at |α| = span/2 and span, as the
median and range over the directions, both signs (d and -d are equally likely draws) and the seeds; and on the one
2-D grid the fraction of points within 2× the loss at θ (the size of the basin around θ in that slice) and the
fraction of interior grid points where the slice is locally convex (its finite-difference 2×2 Hessian has no
eigenvalue below -0.1% of its largest in magnitude, which tolerates rounding in flat regions). Li et al. map the
full Hessian's eigenvalue ratio instead; the slice's convexity is a weaker proxy: non-convexity in a slice means
the loss is not convex there, but a convex-looking slice can hide negative curvature in other directions.

Saved per run: ``alphas``, ``loss_1d``, ``error_1d`` (1-D: directions × points; one row in results saved before
``--directions``), ``grid``, ``loss_2d``, ``error_2d`` (2-D, with ``loss_2d[i, j]`` at α = grid[i], β = grid[j]),
``origin_loss``, ``origin_error`` and ``images``. Cost: one forward pass over the images per point: with the
defaults (256 images) 5 × 41 + 11² = 326 points, where the 41 + 11² of one direction took 10 to 80 s for a 56-layer
net of width 16 on 14×14 images on a busy 2-core CPU. The paper used the whole training set and much finer grids:
raise ``--images`` and ``--grid`` for that, on a GPU."""

from __future__ import annotations

import argparse
import zlib

import numpy as np
import torch
from torch import nn

from reslab.analysis.trained import TrainedRun, evaluate

TITLE = "Loss landscape along filter-normalised random directions (Li et al. 2018)"
DIMS = ("1", "2", "both")
EVAL_BATCH = 1024  # images per forward pass: large enough to keep the CPU's threads busy on small images


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--images", type=int, default=256, help="training images to measure on, the first N (default 256; 0 = all)"
    )
    parser.add_argument("--points", type=int, default=41, help="points of the 1-D scan, odd (default 41)")
    parser.add_argument("--grid", type=int, default=11, help="points per axis of the 2-D scan, odd (default 11)")
    parser.add_argument("--span", type=float, default=1.0, help="the scans cover [-span, span] (default 1.0)")
    parser.add_argument("--dims", default="both", help="which scans: 1, 2 or both (default both)")
    parser.add_argument(
        "--directions", type=int, default=5, help="random directions of the 1-D scan (default 5; the spread is shown)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random directions (default 0)")


def settings(args: argparse.Namespace) -> dict:
    from reslab.errors import UserError

    if args.images < 0:
        raise UserError(f"--images must be 0 (all) or a positive number of training images, got {args.images}")
    for option, value in (("--points", args.points), ("--grid", args.grid)):
        if value < 3 or value % 2 == 0:
            raise UserError(f"{option} must be odd and at least 3 (so that the trained weights are on it), got {value}")
    if not (np.isfinite(args.span) and args.span > 0):
        raise UserError(f"--span must be a positive number, got {args.span}")
    if str(args.dims) not in DIMS:
        raise UserError(f"--dims must be one of {', '.join(DIMS)}, got {args.dims!r}")
    if args.seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.directions < 1:
        raise UserError(f"--directions must be a positive number of random directions, got {args.directions}")
    return {
        "images": args.images,
        "points": args.points,
        "grid": args.grid,
        "span": float(args.span),
        "dims": str(args.dims),
        "seed": args.seed,
        "directions": args.directions,
    }


def needs(trained: TrainedRun) -> str | None:
    return None


def scans(settings: dict) -> tuple[bool, bool]:
    """Whether the 1-D and the 2-D scan are asked for."""
    return settings["dims"] in ("1", "both"), settings["dims"] in ("2", "both")


def axis(points: int, span: float) -> np.ndarray:
    """``points`` (odd) evenly spaced values in [-span, span] with the middle one exactly 0."""
    half = (points - 1) // 2
    return span * np.arange(-half, half + 1) / half


def moves(param: torch.Tensor) -> bool:
    """Whether a parameter gets a direction: conv and linear weights do, biases and BN's scales and shifts (1-D)
    do not."""
    return param.dim() > 1


def raw_direction(net: nn.Module, seed: int, index: int) -> dict[str, torch.Tensor]:
    """Direction ``index`` before normalisation: N(0, 1) draws for each moving weight, zero for the rest. Each
    weight's draw comes from its own generator seeded by (seed, index, name), on the CPU so that every device gets
    the same numbers."""
    out = {}
    for name, param in net.named_parameters():
        if moves(param):
            entropy = np.random.SeedSequence([seed, index, zlib.crc32(name.encode())]).generate_state(2, np.uint32)
            g = torch.Generator().manual_seed(int(entropy[0]) << 32 | int(entropy[1]))
            d = torch.randn(param.shape, generator=g, dtype=torch.float32)
            out[name] = d.to(device=param.device, dtype=param.dtype)
        else:
            out[name] = torch.zeros_like(param)
    return out


def filter_normalised(net: nn.Module, direction: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``direction`` with every filter (a slice along the weight's first axis: a conv's output channel, a linear
    layer's row) rescaled to the Frobenius norm of the trained weight's same filter; zero directions stay zero."""
    out = {}
    for name, param in net.named_parameters():
        d = direction[name]
        if moves(param):
            theta_norm = torch.linalg.vector_norm(param.detach().flatten(1), dim=1)
            d_norm = torch.linalg.vector_norm(d.flatten(1), dim=1)
            scale = theta_norm / d_norm.clamp_min(torch.finfo(d.dtype).tiny)
            d = d * scale.view(-1, *([1] * (d.dim() - 1)))
        out[name] = d
    return out


def directions(net: nn.Module, seed: int, count: int) -> list[dict[str, torch.Tensor]]:
    """``count`` filter-normalised random directions for ``net``, keyed by parameter name."""
    return [filter_normalised(net, raw_direction(net, seed, k)) for k in range(count)]


@torch.no_grad()
def scan(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, dirs: list[dict[str, torch.Tensor]], coords: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Loss and error at ``θ + Σ_k coords[p, k] · dirs[k]`` for each row ``p`` of ``coords`` (points × directions).
    The weights are set in place from a saved copy of θ at each point, and θ is copied back afterwards, bit for
    bit, whatever happens in between."""
    params = {name: p for name, p in net.named_parameters() if any(d[name].any() for d in dirs)}
    saved = {name: p.detach().clone() for name, p in params.items()}
    losses, errors = np.empty(len(coords)), np.empty(len(coords))
    try:
        for i, point in enumerate(coords):
            for name, p in params.items():
                p.copy_(saved[name])
                for step, d in zip(point, dirs):
                    p.add_(d[name], alpha=float(step))
            losses[i], errors[i] = evaluate(net, x, y, EVAL_BATCH)
    finally:
        for name, p in params.items():
            p.copy_(saved[name])
    return losses, errors


def measure(trained: TrainedRun, settings: dict) -> dict[str, np.ndarray]:
    net = trained.net("trained")
    x, y = trained.images("train", settings["images"] or None)
    one, two = scans(settings)
    count = settings.get("directions", 1)
    dirs = directions(net, settings["seed"], max(count if one else 0, 2 if two else 0))
    out: dict[str, np.ndarray] = {"images": np.array(len(y))}
    if one:
        alphas = axis(settings["points"], settings["span"])
        out["alphas"] = alphas
        curves = [scan(net, x, y, [d], alphas[:, None]) for d in dirs[:count]]
        out["loss_1d"], out["error_1d"] = np.stack([c[0] for c in curves]), np.stack([c[1] for c in curves])
        center = len(alphas) // 2
        out["origin_loss"], out["origin_error"] = out["loss_1d"][0, center], out["error_1d"][0, center]
    if two:
        grid = axis(settings["grid"], settings["span"])
        a, b = np.meshgrid(grid, grid, indexing="ij")  # loss_2d[i, j] is at α = grid[i], β = grid[j]
        losses, errors = scan(net, x, y, dirs, np.stack([a.ravel(), b.ravel()], 1))
        out["grid"] = grid
        out["loss_2d"], out["error_2d"] = losses.reshape(a.shape), errors.reshape(a.shape)
        center = len(grid) // 2
        out.setdefault("origin_loss", out["loss_2d"][center, center])
        out.setdefault("origin_error", out["error_2d"][center, center])
    return {k: np.asarray(v) for k, v in out.items()}


def scalars(arrays: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The 1-D curve along d1, indexed by grid point: step i is α = span · (2i / (points - 1) - 1)."""
    if "loss_1d" not in arrays:
        return {}
    loss, error = np.atleast_2d(arrays["loss_1d"])[0], np.atleast_2d(arrays["error_1d"])[0]
    index = np.arange(len(loss))
    return {
        "analysis/landscape/train_loss_1d_by_grid_index": (index, loss),
        "analysis/landscape/train_error_1d_by_grid_index": (index, error),
    }

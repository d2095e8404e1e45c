"""Effective depth of gradient paths (Veit, Wilber and Belongie 2016, §4.3, Fig. 6): how much gradient reaches the
input through paths of each length.

A residual net of B blocks unrolls into 2^B paths: a path of length k goes through the residual branch of k blocks
and the shortcut of the other B - k, and there are binom(B, k) of them. Backpropagation is linear in the gradient
it carries, so the gradient at the first block's input (the stem's output) is exactly the sum of the gradients
along the 2^B paths, each taken with every ReLU's derivative (inside the branches and after each addition) fixed
by the ordinary forward pass: the linearisation Veit et al. use.

How it is measured: one forward pass of the trained net (fp32, BN in evaluation mode) on training images, with
every block's two terms, ``branch(x)`` and ``shortcut(x)``, passed through a gate that is the identity forward and
multiplies the gradient by a 0/1 switch read when the backward pass reaches it (`gated`). The graph is kept, and
each backward pass sets the switches so that in k blocks only the branch and in the other B - k only the shortcut
passes gradient: the gradient at the stem's output is then the gradient through that one path. Each image gets
its own random k-subset of blocks (drawn uniformly, ``--seed``) in every backward pass, so ``--samples`` passes per
length give ``--samples`` × ``--images`` single-path gradients per length (the paper does not say how it drew its
subsets; independent ones per image cost nothing more and spread the draws over many more paths). The loss is each
image's own training cross-entropy (summed over the batch, so an image's gradient does not depend on the batch
size). The gradient of a long path can be tens of orders of magnitude below that of the shortcut-only path, so the
backward pass carries it times 2^64 (exact, a power of two) and norms are taken in float64.

For each length k: the per-path magnitude is the mean over images and subsets of the norm of the single-path
gradient (Veit's Fig. 6b); times the number of paths binom(B, k) (Fig. 6a) it is the total magnitude contributed
by paths of that length (Fig. 6c), here normalised to sum to 1 so that depths compare. The summary reports the
shortest interval of lengths holding 90% of it and its weighted mean length. Veit et al. found, for a CIFAR-10
ResNet-110 (54 blocks), almost all gradient in paths of length 5-17: the net trains as an ensemble of shallow
nets. A plain net has one path, through all its blocks, so it is left out; so is, from the figure and the numbers
of its group, a collapsed run whose output does not depend on its input (no gradient at all to divide).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import comb
from torch import nn

from reslab.analysis.trained import TrainedRun
from reslab.errors import UserError
from reslab.models.cifar_net import Block, blocks_per_stage

TITLE = "Effective depth: gradient through paths of each length (Veit et al. 2016, §4.3)"
BATCH = 64  # images per forward pass: bounds the memory of the kept graph, not what is measured
# The backward pass carries the gradient times 2^64, divided out in float64: exact (a power of two), and it keeps the
# gradient of a long path, which can shrink tenfold per residual branch, clear of fp32's smallest numbers.
SCALE = 2.0**64


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--images", type=int, default=64, help="training images to measure on, the first N (default 64)"
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=10,
        help="backward passes per path length, each through a random path per image (default 10)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random choice of paths (default 0)")


def settings(args: argparse.Namespace) -> dict:
    if args.images < 1:
        raise UserError(f"--images must be a positive number of training images, got {args.images}")
    if args.samples < 1:
        raise UserError(f"--samples must be a positive number of backward passes per path length, got {args.samples}")
    if args.seed < 0:
        raise UserError(f"--seed must be 0 or a positive integer, got {args.seed}")
    return {"images": args.images, "samples": args.samples, "seed": args.seed}


def needs(trained: TrainedRun) -> str | None:
    if trained.is_residual:
        return None
    count = 3 * blocks_per_stage(trained.depth)
    return (
        f"{trained.path.name}: a plain net has one path, through all {count} blocks: it has no distribution of "
        f"path lengths to measure; analyse residual runs"
    )


class Switch:
    """A gate's setting, read when the backward pass reaches the gate: None passes the gradient unchanged; a tensor
    of 0/1 (one per image, shaped to broadcast over the gradient) multiplies it."""

    def __init__(self) -> None:
        self.scale: torch.Tensor | None = None


class _Gate(torch.autograd.Function):
    """The identity forward; backward, the gradient times its switch's scale at the time of the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, switch: Switch) -> torch.Tensor:
        ctx.switch = switch
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        scale = ctx.switch.scale
        if scale is None:
            return grad, None
        if not scale.any():
            return None, None  # no image takes this term: autograd skips the backward of what lies behind it
        return grad * scale, None


def _gated_forward(block: Block, branch: Switch, shortcut: Switch):
    def forward(x: torch.Tensor) -> torch.Tensor:
        out = F.relu(block.bn1(block.conv1(x)))  # Block.forward's operations in its order, so the output is the same
        out = block.bn2(block.conv2(out))
        return F.relu(_Gate.apply(out, branch) + _Gate.apply(block.shortcut(x), shortcut))

    return forward


def blocks(net: nn.Module) -> list[Block]:
    return [m for m in net.modules() if isinstance(m, Block)]


@contextlib.contextmanager
def gated(net: nn.Module) -> Iterator[list[tuple[Switch, Switch]]]:
    """While inside, every block's branch and shortcut output pass through a gate; yields each block's (branch,
    shortcut) switches in forward order. A graph built inside keeps its gates after the blocks get their class's
    forward back on leaving."""
    found = blocks(net)
    if any(b.shortcut is None for b in found):
        raise ValueError("a plain block has no shortcut to gate")
    switches = [(Switch(), Switch()) for _ in found]
    for block, (branch, shortcut) in zip(found, switches):
        block.forward = _gated_forward(block, branch, shortcut)
    try:
        yield switches
    finally:
        for block in found:
            del block.forward  # back to the class's forward


@contextlib.contextmanager
def stem_output_as_leaf(net: nn.Module) -> Iterator[list[torch.Tensor]]:
    """While inside, the stem's output is a leaf that requires grad (the list it yields holds it after a forward):
    the gradient is taken at the first block's input."""
    held: list[torch.Tensor] = []

    def hook(module, inputs, output):
        held[:] = [output.detach().requires_grad_()]
        return held[0]

    handle = net.stem.register_forward_hook(hook)
    try:
        yield held
    finally:
        handle.remove()


class PathGradients:
    """One forward pass of ``net`` on (x, y) with gated blocks, kept for any number of backward passes."""

    def __init__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor):
        with torch.enable_grad(), stem_output_as_leaf(net) as held, gated(net) as switches:
            self.loss = F.cross_entropy(net(x).float(), y, reduction="sum")
        self.stem_output, self.switches = held[0], switches

    def gradient(self, through_branch: torch.Tensor | None = None) -> torch.Tensor:
        """The gradient of each image's loss at the stem's output, in float64: along the single path whose residual
        branches are the True entries of its row of ``through_branch`` (images × blocks, bool; the other blocks'
        shortcuts), or the ordinary gradient (all paths) for None. The backward pass carries it times `SCALE`."""
        if through_branch is not None:
            through_branch = through_branch.to(self.stem_output.device, self.stem_output.dtype)
        for j, (branch, shortcut) in enumerate(self.switches):
            if through_branch is None:
                branch.scale = shortcut.scale = None
            else:
                take = through_branch[:, j].view(-1, 1, 1, 1)
                branch.scale, shortcut.scale = take, 1 - take
        seed = torch.tensor(SCALE, device=self.loss.device)
        (grad,) = torch.autograd.grad(self.loss, self.stem_output, seed, retain_graph=True)
        return grad.double() / SCALE


def ordinary_gradient(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The gradient of each image's loss at the stem's output, by the net's own forward (no gates)."""
    with torch.enable_grad(), stem_output_as_leaf(net) as held:
        loss = F.cross_entropy(net(x).float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, held[0])
    return grad


def random_paths(rng: np.random.Generator, images: int, count: int, length: int) -> np.ndarray:
    """For each image, a uniformly random set of ``length`` of ``count`` blocks (images × count, bool)."""
    return rng.random((images, count)).argsort(axis=1) < length  # where a random permutation is below `length`


def mean_length_interval(norms: np.ndarray, number: np.ndarray, seed: int) -> tuple[float, float]:
    """A 95% bootstrap interval (scipy's, percentile) of the weighted mean path length, resampling the images: each
    image with its sampled paths is one draw, so the interval covers both which images and which paths were taken
    (the run's weights are fixed; seeds are another source of spread, shown apart)."""
    from scipy.stats import bootstrap

    per_image = norms.mean(axis=1)  # (lengths, images): each image's mean over its sampled paths

    def mean_length(sample: np.ndarray, axis: int = -1) -> np.ndarray:
        per_path = sample.mean(axis=axis)  # (lengths,), or (lengths, resamples) when scipy passes a batch
        shape = (-1,) + (1,) * (per_path.ndim - 1)
        total = per_path * number.reshape(shape)
        return (np.arange(len(number)).reshape(shape) * total).sum(0) / total.sum(0)

    result = bootstrap(
        (per_image,), mean_length, axis=-1, confidence_level=0.95, method="percentile", n_resamples=2000,
        rng=np.random.default_rng(seed), vectorized=True,
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def measure(trained: TrainedRun, settings: dict) -> dict[str, np.ndarray]:
    net = trained.net("trained").requires_grad_(False)  # only the gradient at the stem's output is wanted
    x, y = trained.images("train", settings["images"])
    count, images, samples = len(blocks(net)), len(y), settings["samples"]
    rng = np.random.default_rng(settings["seed"])
    # All paths drawn first, in one order, so the batching of images does not change which paths are measured.
    chosen = np.stack([[random_paths(rng, images, count, k) for _ in range(samples)] for k in range(count + 1)])
    norms = np.zeros((count + 1, samples, images))  # float64: a long path's norm can be below fp32's range
    full = np.zeros(images)
    for start in range(0, images, BATCH):
        part = slice(start, start + BATCH)
        paths = PathGradients(net, x[part], y[part])
        full[part] = paths.gradient(None).flatten(1).norm(dim=1).cpu().numpy()
        for k in range(count + 1):
            for s in range(samples):
                grad = paths.gradient(torch.from_numpy(chosen[k, s, part]))
                norms[k, s, part] = grad.flatten(1).norm(dim=1).cpu().numpy()
        del paths  # frees the kept graph before the next batch's
    lengths = np.arange(count + 1)
    number = comb(count, lengths)
    per_path = norms.mean(axis=(1, 2))
    total = number * per_path
    if total.sum() > 0:
        share = total / total.sum()
        mean_length = float((lengths * share).sum())
        low, high = mean_length_interval(norms, number, settings["seed"])
    else:  # the output does not depend on the input at all (a collapsed net): there is no gradient to divide
        share, mean_length, low, high = np.full(count + 1, np.nan), np.nan, np.nan, np.nan
    return {
        "blocks": np.array(count),
        "length": lengths,
        "paths": number,
        "norms": norms,
        "per_path": per_path,
        "total": total,
        "share": share,
        "mean_length": np.array(mean_length),
        "mean_length_interval": np.array([low, high]),
        "full_gradient": np.array(float(full.mean())),
        "images": np.array(images),
        "samples": np.array(samples),
    }


def scalars(arrays: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    length = arrays["length"]
    return {
        "analysis/paths/gradient_share_by_path_length": (length, arrays["share"]),
        "analysis/paths/gradient_per_path_by_length": (length, arrays["per_path"]),
    }

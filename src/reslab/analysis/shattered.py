"""Shattered gradients (Balduzzi et al. 2017): how alike the input gradients of nearby inputs are, layer by layer.

Balduzzi et al. found that in a deep plain ReLU net the gradient with respect to the input, followed along a line
through input space, looks more and more like white noise as depth grows: the correlation between the gradients at
neighbouring inputs decays exponentially with depth (like 2^-L at initialisation), while with skip connections it
decays far more slowly (sublinearly, like 1/sqrt(L) for resnets with BN). This measures it on the run's own net and
data, at every block, at initialisation and after training.

- **Inputs.** The first ``2P`` test images (``--pairs P``), paired in order (0, 1), (2, 3), ...; for each pair ``K``
  points (``--points``) on the straight line between them in the normalised input space, ``x(t) = (1-t) x_a + t x_b``
  with ``t`` evenly spaced over [0, 1], so neighbours are ``1/(K-1)`` of the pair's distance apart.
- **Scalars.** At the stem's and every block's output ``h`` the scalar is a fixed random projection ``<r, h(x)>``:
  ``r`` is standard normal of the output's shape, drawn once per layer from ``--seed`` and the same for every point,
  every pair and both states, so the profile looks at the whole layer rather than one unit. At the output it is the
  logit of image ``a``'s labelled class: the output training raised for that image, whose gradient is the image's
  saliency map. At initialisation one fixed logit through a random classifier is itself a random projection of the
  last block, so the same rule serves both states.
- **Gradients.** ``d scalar / d x`` at every point. All points of a line (and of several lines, up to 256 points) go
  through the net as one batch with BN in evaluation mode, so a point's scalar depends on its own input only and
  the gradient of the batch's sum is every point's own gradient: one forward, then one backward per layer.
- **Correlation.** Pearson's correlation of two gradients over their entries (channels x pixels): a gradient with
  itself gives exactly 1, with its negative -1. Per layer and line ``C(lag)`` is the mean of ``corr(g(t_i),
  g(t_i+lag))`` over ``i``; the arrays keep ``C`` at every lag 0..K-1 (mean over pairs) and lag 1 for each pair.
  A gradient that is constant over its entries (zero: a dead unit, a saturated net) has no correlation (NaN) and is
  left out of the means; ``<state>_constant`` counts them per layer (out of pairs × points), and the summary says so.
- **States.** ``trained``: the final weights and BN running statistics. ``init``: the weights the run started from
  (same seed, same draws). Their BN running statistics are still BN's defaults (mean 0, variance 1), which would
  leave every layer unnormalised in evaluation mode, a net training never saw; so they are first estimated from
  ``--bn-images`` training images in batches of the run's batch size (`estimate_bn_statistics`), and BN normalises
  as in the first training step without tying the points together. A net without BN has nothing to estimate.

The layer axis counts weighted layers from the input (the stem is 1, block ``k``'s output ``2k+1``, the logits the
net's depth), so nets of different depths line up at the same distance from the input.
"""

from __future__ import annotations

import argparse
import contextlib
import warnings

import numpy as np
import torch
from torch import nn

from reslab.analysis.trained import TrainedRun, estimate_bn_statistics
from reslab.errors import UserError

TITLE = "Shattered gradients: correlation of input gradients at neighbouring inputs (Balduzzi et al. 2017)"
STATES = ("init", "trained")
BATCH_POINTS = 256  # points per forward pass (whole lines): bounds the activations the backward passes keep


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pairs", type=int, default=4, help="pairs of test images, the first 2P paired in order (default 4)"
    )
    parser.add_argument("--points", type=int, default=64, help="points on each pair's line, ends included (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the layers' random projections (default 0)")
    parser.add_argument(
        "--bn-images",
        type=int,
        default=1024,
        help="training images to estimate the initial net's BN statistics from (default 1024)",
    )


def settings(args: argparse.Namespace) -> dict:
    if args.pairs < 1:
        raise UserError(f"--pairs must be a positive number of image pairs, got {args.pairs}")
    if args.points < 2:
        raise UserError(f"--points must be at least 2 (the two images; neighbours need two points), got {args.points}")
    if args.seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.bn_images < 1:
        raise UserError(f"--bn-images must be a positive number of training images, got {args.bn_images}")
    return {"pairs": args.pairs, "points": args.points, "seed": args.seed, "bn_images": args.bn_images}


def needs(trained: TrainedRun) -> str | None:
    return None


def taps(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules whose outputs are projected, in forward order: the stem and every block."""
    from reslab.analysis.lesion import blocks

    return [("stem", net.stem), *blocks(net)]


def layer_numbers(net: nn.Module) -> np.ndarray:
    """Weighted layers from the input to each tap and to the logits: 1 (stem), 3, 5, ..., the net's depth."""
    n = len(taps(net)) - 1
    return np.array([1 + 2 * k for k in range(n + 1)] + [2 * n + 2])


@contextlib.contextmanager
def recorded(modules: list[nn.Module]):
    """A dict that the forward passes inside fill with each module's output, by its index in ``modules``."""
    outputs: dict[int, torch.Tensor] = {}

    def keep(i: int):
        def hook(_module, _inputs, output) -> None:  # returns None: the output goes on unchanged
            outputs[i] = output

        return hook

    hooks = [m.register_forward_hook(keep(i)) for i, m in enumerate(modules)]
    try:
        yield outputs
    finally:
        for h in hooks:
            h.remove()


def projections(net: nn.Module, shape: tuple[int, ...], seed: int) -> list[torch.Tensor]:
    """One standard normal tensor per tap, of its output's shape (for one image), drawn on the CPU from ``seed`` so
    every device and both states get the same; scaled to unit expected norm, which the correlations ignore."""
    device = next(net.parameters()).device
    with recorded([m for _, m in taps(net)]) as outputs, torch.no_grad():
        net(torch.zeros(1, *shape, device=device))
    generator = torch.Generator().manual_seed(seed)
    drawn = [torch.randn(outputs[i].shape[1:], generator=generator) for i in range(len(outputs))]
    return [(r / r.numel() ** 0.5).to(device) for r in drawn]


def input_gradients(
    net: nn.Module, x: torch.Tensor, layers: list[nn.Module], weights: list[torch.Tensor], classes: torch.Tensor
) -> torch.Tensor:
    """(len(layers) + 1, B, *x.shape[1:]): at each point of ``x`` the gradient of ``<weights[l], layers[l](.)>``
    for each layer, then of the logit ``classes[i]``. ``net`` must be in evaluation mode (points independent), so
    the gradient of the batch's sum is each point's own; one forward, one backward per scalar."""
    if net.training:
        raise ValueError("input_gradients needs the net in evaluation mode: in training mode BN ties the points")
    x = x.detach().clone().requires_grad_(True)
    with recorded(layers) as outputs, torch.enable_grad():
        logits = net(x)
    scalars = [(outputs[i] * w).sum() for i, w in enumerate(weights)]
    scalars.append(logits.gather(1, classes[:, None]).sum())
    grads = [torch.autograd.grad(s, x, retain_graph=j < len(scalars) - 1)[0] for j, s in enumerate(scalars)]
    return torch.stack(grads)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson's correlation of two gradients over their entries."""
    return float(torch.corrcoef(torch.stack([a.flatten().double(), b.flatten().double()]))[0, 1])


def lag_correlations(grads: torch.Tensor) -> torch.Tensor:
    """(K,): for the K gradients of one line (K, ...), the mean correlation of gradients ``lag`` points apart, for
    lag 0..K-1 (lag 0 is 1 unless a gradient is constant); NaN correlations (constant gradients) are left out."""
    c = torch.corrcoef(grads.flatten(1).double())
    return torch.stack([torch.nanmean(torch.diagonal(c, offset=lag)) for lag in range(len(grads))])


def lines(x: torch.Tensor, y: torch.Tensor, points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, K, ...): ``points`` evenly spaced points from ``a = x[2p]`` to ``b = x[2p+1]`` for each pair, ends
    included; and (P,): the class of each line's logit, image a's label ``y[2p]``."""
    a, b = x[0::2], x[1::2]
    t = torch.linspace(0, 1, points, device=x.device).view(1, points, *([1] * (x.dim() - 1)))
    return (1 - t) * a[:, None] + t * b[:, None], y[0::2]


def profile(net: nn.Module, paths: torch.Tensor, classes: torch.Tensor, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(P, layers, K): the lag correlations of every line's gradients at every tap and at the logits; and (layers,):
    how many of the P × K gradients of each layer are constant over their entries (left out of the correlations)."""
    net.requires_grad_(False)  # gradients with respect to the input only: no weight gradients computed
    found = [m for _, m in taps(net)]
    weights = projections(net, tuple(paths.shape[2:]), seed)
    pairs, points = paths.shape[:2]
    per_batch = max(1, BATCH_POINTS // points)
    out = np.empty((pairs, len(found) + 1, points))
    constant = np.zeros(len(found) + 1, dtype=np.int64)
    for start in range(0, pairs, per_batch):
        chunk = paths[start : start + per_batch]
        n = len(chunk)
        grads = input_gradients(
            net, chunk.flatten(0, 1), found, weights, classes[start : start + n].repeat_interleave(points)
        )
        grads = grads.view(len(grads), n, points, -1).cpu()
        constant += (grads.amax(-1) == grads.amin(-1)).flatten(1).sum(1).numpy()
        for p in range(n):
            for layer in range(len(grads)):
                out[start + p, layer] = lag_correlations(grads[layer, p]).numpy()
    return out, constant


def prepared_net(trained: TrainedRun, state: str, bn_images: int) -> nn.Module:
    """The run's net in ``state`` in evaluation mode; at ``init`` with BN statistics estimated (module docstring)."""
    net = trained.net(state)
    if state == "init" and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        x, _ = trained.images("train", bn_images)
        estimate_bn_statistics(net, x, batch_size=int(trained.cfg.dataset.batch_size))
    return net


def measure(trained: TrainedRun, settings: dict) -> dict[str, np.ndarray]:
    pairs, points = settings["pairs"], settings["points"]
    x, y = trained.images("test", 2 * pairs)
    if len(x) < 2 * pairs:
        raise UserError(
            f"--pairs {pairs} needs {2 * pairs} test images but {trained.path.name}'s test split has {len(x)}; "
            f"use --pairs {len(x) // 2} or fewer"
        )
    paths, classes = lines(x, y, points)
    arrays: dict[str, np.ndarray] = {}
    for state in STATES:
        net = prepared_net(trained, state, settings["bn_images"])
        lags, constant = profile(net, paths, classes, settings["seed"])
        arrays[f"{state}_constant"] = constant
        with warnings.catch_warnings():  # a layer whose every gradient is constant: NaN, and counted above
            warnings.simplefilter("ignore", RuntimeWarning)
            arrays[f"{state}_lag"] = np.nanmean(lags, axis=0)
        arrays[f"{state}_lag1_by_pair"] = lags[:, :, 1]
    step = (x[1::2] - x[0::2]).flatten(1).norm(dim=1) / (points - 1) / x[0].numel() ** 0.5
    return {
        "layers": np.array([name for name, _ in taps(net)] + ["logits"]),
        "layer_number": layer_numbers(net),
        **arrays,
        "lag_t": np.arange(points) / (points - 1),
        "step_rms": np.array(float(step.mean())),  # RMS change per input entry between neighbours
        "pairs": np.array(pairs),
        "points": np.array(points),
    }


def scalars(arrays: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        f"analysis/shattered/lag1_correlation_{state}": (arrays["layer_number"], arrays[f"{state}_lag"][:, 1])
        for state in STATES
    }

"""Signal propagation at initialisation (``reslab analyze signal``): how gradients and activations grow or shrink
layer by layer in the nets reslab builds, measured on training batches in training mode, beside what theory predicts
(`reslab.analysis.signal_theory`).

Per seed, the run's net is built afresh from its config with seeds ``seed, seed+1, ...`` (``--seeds``: no training,
no checkpoint needed) and ``--batches`` training batches of the run's batch size go through it in training mode (BN
normalises with the batch's statistics, as in the first step of training). For each batch:

- **Gradients.** The cross-entropy's gradient with respect to each weighted layer's weights and to its input (the
  activation the layer reads), as Frobenius norms; the layers are the 6n+2 the depth counts, in order.
- **Batch norm.** Each BN's input and output: the average channel variance (over batch × height × width).
- **Residual blocks** (Brock, De and Smith 2021's signal propagation plot): the stream entering the block, the
  branch's output before the addition, and their ratio; the average squared channel mean and the average channel
  variance of each.

Where the run measured itself at chosen steps (``callbacks=[default,signal]``, `SignalAtSteps`), its
``signal_steps.npz`` comes along: the profile and growth at each of those steps, the dynamics.

Norms are averaged over the batches in log space (a growth rate is a ratio), then kept per seed. ``growth`` is the
rise of log10 of the input-gradient norm per layer from the output toward the input (positive: exploding toward the
input, negative: vanishing), a least-squares slope over the layers between the stem and the classifier with an
intercept of its own per stage (a stage's first conv halves the resolution and doubles the channels, which moves the
level but is not depth). Scaling the loss scales every gradient alike and leaves the growth unchanged (tested).
``predicted`` is the theory's (`reslab.analysis.signal_theory.predicted_growth`; NaN where none applies), with BN's
batch taken as the fewest positions any of the net's BNs normalises over (batch × height × width of stage 3). For a
plain net without BN it is the same fit over ``predicted_profile``, the expected profile that zero padding leaves
(`reslab.analysis.signal_theory.padded_gradient_profile`, from the net's own convs' geometry).
"""

from __future__ import annotations

import argparse

import numpy as np

from reslab.analysis.signal_theory import padded_gradient_profile, predicted_growth
from reslab.analysis.trained import TrainedRun
from reslab.instruments.signal_probe import growth_per_layer, one_batch, stages

TITLE = "Signal propagation at initialisation: per-layer gradient growth, measured and predicted"
USES_WEIGHTS = False  # fresh nets from each run's config: a folder kept without checkpoints can be analysed
BN_MODE = "BN in training mode (the batch's statistics)"  # as the summary's header says it


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=10, help="initialisations per run (default 10)")
    parser.add_argument("--batches", type=int, default=4, help="training batches per initialisation (default 4)")


def settings(args: argparse.Namespace) -> dict:
    from reslab.errors import UserError

    if args.seeds < 2:
        raise UserError(f"--seeds must be at least 2 (an interval needs two), got {args.seeds}")
    if args.batches < 1:
        raise UserError(f"--batches must be a positive number of training batches, got {args.batches}")
    return {"seeds": args.seeds, "batches": args.batches}


def needs(trained: TrainedRun) -> str | None:
    return None


def last_stage_size(size: int) -> int:
    """The side of stage 3's maps: each of two stride-2 3×3 convs (padding 1) takes a side s to ceil(s / 2)."""
    for _ in range(2):
        size = (size + 1) // 2
    return size


def conv_geometry(net, in_channels: int, size: int) -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, padding, input side, output side) of each of the net's depth convs, from one forward pass of
    a blank image (the sides are the net's own, not recomputed)."""
    import torch
    from torch import nn

    from reslab.models import depth_layers

    convs = [m for _, m in depth_layers(net) if isinstance(m, nn.Conv2d)]
    sides: dict[int, tuple[int, int]] = {}
    hooks = [m.register_forward_hook(lambda m, a, o, i=i: sides.__setitem__(i, (a[0].shape[-1], o.shape[-1])))
             for i, m in enumerate(convs)]  # fmt: skip
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, in_channels, size, size, device=next(net.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    return [(m.kernel_size[0], m.stride[0], m.padding[0], *sides[i]) for i, m in enumerate(convs)]


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """The mean and its 95% Student-t interval (scipy), over the initialisations."""
    from scipy import stats

    mean = float(np.mean(values))
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    return mean, float(low), float(high)


def measure(trained: TrainedRun, settings: dict) -> dict[str, np.ndarray]:
    import lightning as L

    from reslab.build import build_net

    cfg = trained.cfg
    batch = int(cfg.dataset.batch_size)
    x_all, y_all = trained.images("train", batch * settings["batches"])
    per_seed: dict[str, list] = {}
    stage = None
    for k in range(settings["seeds"]):
        L.seed_everything(int(cfg.seed) + k, verbose=False)
        net = build_net(cfg, trained.info.in_channels, trained.info.num_classes).to(trained.device)
        stage = stages(net)
        found = [one_batch(net, x_all[b * batch : (b + 1) * batch], y_all[b * batch : (b + 1) * batch])
                 for b in range(settings["batches"])]  # fmt: skip
        for key in found[0]:
            values = np.stack([f[key] for f in found])
            merged = np.exp(np.log(values).mean(0)) if key.endswith("grad") else values.mean(0)
            per_seed.setdefault(key, []).append(merged)
    out = {key: np.stack(v) for key, v in per_seed.items()}  # (seeds, ...)
    out["stage"] = stage
    out["growth"] = np.array([growth_per_layer(np.log10(g), stage) for g in out["input_grad"]])
    out["growth_interval"] = np.array(mean_interval(out["growth"]))
    size = trained.datamodule.image_size
    positions = batch * last_stage_size(size) ** 2  # stage 3's BN: the fewest positions per channel
    norm, shortcut = str(cfg.model.get("norm", "batch")), str(cfg.model.shortcut)
    predicted = predicted_growth(norm, shortcut, positions)
    if norm == "none" and shortcut == "none":  # zero padding's losses, from the net's geometry (classifier: NaN)
        profile = padded_gradient_profile(conv_geometry(net, trained.info.in_channels, size))
        out["predicted_profile"] = np.append(profile, np.nan)
        predicted = growth_per_layer(out["predicted_profile"], stage)
    out["predicted"] = np.array(np.nan if predicted is None else predicted)
    out["bn_positions"] = np.array(positions)
    out["batch"] = np.array(batch)
    out["image_size"] = np.array(size)
    out["norm"] = np.array(str(cfg.model.get("norm", "batch")))
    steps = trained.path / "signal_steps.npz"  # the run's own, at chosen steps (callbacks=[default,signal])
    if steps.exists():
        with np.load(steps) as data:
            out["steps"], out["steps_input_grad"] = data["steps"], data["input_grad"]
            out["steps_growth"] = np.array([growth_per_layer(np.log10(g), data["stage"]) for g in data["input_grad"]])
    return out


def scalars(arrays: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The input-gradient norm per layer (geometric mean over seeds), layer index as the step."""
    mean = np.exp(np.log(arrays["input_grad"]).mean(0))
    return {"analysis/signal/input_grad_norm_by_layer": (np.arange(1, len(mean) + 1), mean)}

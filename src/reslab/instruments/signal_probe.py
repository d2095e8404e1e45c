"""One batch's signal propagation in a net reslab builds: the per-layer gradient norms (weights and inputs), BN's
input and output variance, and each residual block's stream and branch (`one_batch`). Measured by
`reslab analyze signal` at initialisation and by `SignalAtSteps` at chosen steps of a run; the growth per layer
(`growth_per_layer`) is their common summary.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reslab.files import write_atomic


def _channel_stats(t: torch.Tensor) -> tuple[float, float]:
    """(average squared channel mean, average channel variance) of a (B, C, ...) activation, over all but C."""
    flat = t.detach().transpose(0, 1).flatten(1).double()
    return float((flat.mean(1) ** 2).mean()), float(flat.var(1, unbiased=False).mean())


def one_batch(net: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_scale: float = 1.0) -> dict[str, np.ndarray]:
    """The measurements of one batch (module docstring), the net in training mode; its weights' gradients are
    left as computed."""
    from reslab.models import depth_layers
    from reslab.models.cifar_net import Block

    layers = depth_layers(net)
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    blocks = [m for m in net.modules() if isinstance(m, Block)]
    inputs: dict[int, torch.Tensor] = {}
    bn_var: dict[int, tuple[float, float]] = {}
    stream: dict[int, tuple[float, float]] = {}
    branch: dict[int, tuple[float, float]] = {}

    def keep_input(i):
        def hook(module, args):
            args[0].retain_grad()
            inputs[i] = args[0]

        return hook

    def bn_hook(i):
        return lambda module, args, out: bn_var.__setitem__(i, (_channel_stats(args[0])[1], _channel_stats(out)[1]))

    def stream_hook(i):
        return lambda module, args: stream.__setitem__(i, _channel_stats(args[0]))

    def branch_hook(i):
        return lambda module, args, out: branch.__setitem__(i, _channel_stats(out))

    handles = [m.register_forward_pre_hook(keep_input(i)) for i, (_, m) in enumerate(layers)]
    handles += [m.register_forward_hook(bn_hook(i)) for i, m in enumerate(bns)]
    handles += [b.register_forward_pre_hook(stream_hook(i)) for i, b in enumerate(blocks)]
    handles += [b.bn2.register_forward_hook(branch_hook(i)) for i, b in enumerate(blocks)]
    try:
        net.train()
        net.zero_grad(set_to_none=True)
        x = x.detach().clone().requires_grad_(True)  # so that every activation, the stem's input too, has a gradient
        loss = F.cross_entropy(net(x), y) * loss_scale
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    return {
        "weight_grad": np.array([float(m.weight.grad.norm()) for _, m in layers]),
        "input_grad": np.array([float(inputs[i].grad.norm()) for i in range(len(layers))]),
        "bn_var": np.array([bn_var[i] for i in range(len(bns))]).reshape(len(bns), 2),
        "stream": np.array([stream[i] for i in range(len(blocks))]).reshape(len(blocks), 2),
        "branch": np.array([branch[i] for i in range(len(blocks))]).reshape(len(blocks), 2),
    }


def stages(net: nn.Module) -> np.ndarray:
    """The stage of each of the depth's layers: 0 the stem, 1..3 the stages' convs, 4 the classifier."""
    from reslab.models import depth_layers

    names = [name for name, _ in depth_layers(net)]
    return np.array([0 if not n.startswith("stage") else int(n[len("stage")]) for n in names[:-1]] + [4])


def growth_per_layer(log_norms: np.ndarray, stage: np.ndarray) -> float:
    """The rise of ``log_norms`` per layer toward the input: minus the least-squares slope against the layer's index
    over the stages' convs (stem and classifier left out), with an intercept per stage."""
    inner = (stage >= 1) & (stage <= 3)
    index = np.arange(len(stage))[inner]
    present = np.unique(stage[inner])
    design = np.column_stack([index] + [(stage[inner] == s).astype(float) for s in present])
    coef, *_ = np.linalg.lstsq(design, log_norms[inner], rcond=None)
    return float(-coef[0])


class SignalAtSteps(L.Callback):
    """`one_batch` on the training batch at the steps ``at_steps`` (before that step's update; step 0 is the
    initialisation) and after the last step, saved to ``<job>/signal_steps.npz``: ``steps`` (S,), ``input_grad`` and
    ``weight_grad`` (S × layers), ``stage`` (layers,). The measurement's forward pass runs in training mode, so BN's
    running statistics are saved before it and put back after, and each parameter gets back the gradient tensor it
    had: the run trains as it would without it (tested)."""

    rank_zero_only = True

    def __init__(self, out_dir: str | Path, at_steps=(0, 1, 10, 100), at_end: bool = True):
        self.path = Path(out_dir) / "signal_steps.npz"
        self.at_steps, self.at_end = sorted(set(int(s) for s in at_steps)), at_end
        self.rows: dict[int, dict] = {}
        self.stage: np.ndarray | None = None

    def _measure(self, pl_module, batch, step: int) -> None:
        net = getattr(pl_module.net, "_orig_mod", pl_module.net)
        buffers = {k: v.detach().clone() for k, v in net.named_buffers()}
        params = list(net.parameters())
        grads = [p.grad for p in params]  # the very tensors: a CUDA graph's step holds them as its static buffers
        try:
            x, y = batch
            found = one_batch(net, x.float(), y)
        finally:
            with torch.no_grad():
                for k, v in net.named_buffers():
                    v.copy_(buffers[k])
            for p, g in zip(params, grads, strict=True):
                p.grad = g
        self.rows[step] = {"input_grad": found["input_grad"], "weight_grad": found["weight_grad"]}
        self.stage = stages(net)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step in self.at_steps and trainer.global_step not in self.rows:
            self._measure(pl_module, batch, trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.at_end and trainer.global_step >= trainer.max_steps and trainer.global_step not in self.rows:
            self._measure(pl_module, batch, trainer.global_step)
            self.save()

    def on_train_end(self, trainer, pl_module) -> None:
        self.save()

    def save(self) -> None:
        if not self.rows or self.stage is None:
            return
        steps = sorted(self.rows)
        arrays = {
            "steps": np.array(steps),
            "input_grad": np.stack([self.rows[s]["input_grad"] for s in steps]),
            "weight_grad": np.stack([self.rows[s]["weight_grad"] for s in steps]),
            "stage": self.stage,
        }
        write_atomic(self.path, lambda f: np.savez(f, **arrays))

    def state_dict(self) -> dict:
        """Plain lists: reslab loads checkpoints with tensors and plain containers only (no numpy objects)."""
        rows = {
            int(k): {name: [float(v) for v in values] for name, values in row.items()} for k, row in self.rows.items()
        }
        return {"rows": rows, "stage": None if self.stage is None else [int(v) for v in self.stage]}

    def load_state_dict(self, state: dict) -> None:
        self.rows = {
            int(k): {name: np.asarray(values, dtype=np.float64) for name, values in row.items()}
            for k, row in state.get("rows", {}).items()
        }
        self.stage = None if state.get("stage") is None else np.asarray(state["stage"])

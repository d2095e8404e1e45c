"""Batch norm over the global batch of a run on several CPU processes.

torch's ``SyncBatchNorm`` (what Lightning's ``sync_batchnorm=True`` uses, and what reslab uses on GPUs) refuses
CPU modules. On CPUs, `GlobalBatchNorm` gives every BN layer the statistics of the whole batch instead: the
per-channel sums, sums of squares and counts of every process are added with one all-reduce whose backward
adds the gradients the same way (`_AllReduceSum`), so forward, backward and running statistics are those of one
process holding the whole batch, to rounding.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from lightning.pytorch.plugins.layer_sync import LayerSync
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes, differentiable: the gradient of every process's input is the sum of the gradients of
    the output on all processes (written here because torch's differentiable all_reduce is deprecated)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _GlobalBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d whose training statistics are over all processes (same parameters and buffers)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        c = x.shape[1]
        xf = x.float()
        # Sums of x - shift, with the same shift on every process (the running mean, which DDP keeps equal): the
        # variance E[(x-s)^2] - E[x-s]^2 then loses little to cancellation.
        shift = self.running_mean.detach().view(1, c, 1, 1) if self.running_mean is not None else 0.0
        xs = xf - shift
        count = torch.full((1,), x.numel() // c, dtype=torch.float32, device=x.device)
        total = _AllReduceSum.apply(torch.cat([xs.sum((0, 2, 3)), (xs * xs).sum((0, 2, 3)), count]))
        n = total[-1]
        shifted_mean = total[:c] / n
        var = (total[c : 2 * c] / n - shifted_mean * shifted_mean).clamp_min(0)
        mean = shifted_mean + (shift.view(c) if torch.is_tensor(shift) else 0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1), m)  # unbiased, as nn.BatchNorm2d keeps it
        y = (xf - mean.view(1, c, 1, 1)) * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y


class GlobalBatchNorm(LayerSync):
    """Lightning's layer-sync plugin for CPU processes. The layers change class in place (same parameters,
    buffers and names), so nothing that holds a reference to them (optimiser, instruments) is left behind."""

    def apply(self, model: nn.Module) -> nn.Module:
        for m in model.modules():
            if type(m) is nn.BatchNorm2d:
                m.__class__ = _GlobalBatchNorm2d
        return model

    def revert(self, model: nn.Module) -> nn.Module:
        for m in model.modules():
            if type(m) is _GlobalBatchNorm2d:
                m.__class__ = nn.BatchNorm2d
        return model

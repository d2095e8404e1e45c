"""The work of a training step: multiply-adds of one forward pass, counted layer by layer."""

from __future__ import annotations

import torch

from reslab.models import weight_layers

# A multiply-add is 2 FLOPs, and the backward pass costs about twice the forward: 3 × 2 per MAC and image.
TRAIN_FLOP_PER_MAC = 6


def macs_per_image(net: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass (conv and linear layers), counted with hooks."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            k = module.weight[0].numel()  # in_ch/groups * kh * kw
            total += output[0].numel() * k
        else:
            total += module.weight.numel()

    hooks = [m.register_forward_hook(hook) for _, m in weight_layers(net)]
    device = next(net.parameters()).device
    with torch.no_grad(), torch.compiler.set_stance("force_eager"):
        net.eval()(torch.zeros(1, *shape, device=device))
    net.train()
    for h in hooks:
        h.remove()
    return total

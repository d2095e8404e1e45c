"""Lesion study (Veit, Wilber and Belongie 2016, §4.1): delete one block at a time at test time, measure test error.

Deleting residual block ``i`` removes its residual branch and keeps its shortcut: the block's output becomes
``relu(shortcut(x))``, which is ``x`` itself where the shape stays (``x`` is already the output of a ReLU), and the
subsampled, zero-padded ``x`` (option A) or the 1×1 projection (option B) at a downsampling block. A plain block
has no shortcut, so deleting it means passing its input on unchanged, ``x``; that is possible only where the block
keeps the shape. The first block of stages 2 and 3 halves the resolution and doubles the channels, so in a plain
net it cannot be deleted, and its lesion is missing (NaN) rather than replaced by something the net never had.

Nothing else changes: BN running statistics stay as trained, the rest of the net is untouched. Veit et al. found
that residual nets barely notice the loss of one block except at downsampling blocks, while plain nets collapse to
chance; this measures it on the run at hand.
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np
import torch.nn.functional as F
from torch import nn

from reslab.analysis.trained import TrainedRun, evaluate
from reslab.models.cifar_net import Block

TITLE = "Lesion study: test error with one block deleted (Veit et al. 2016)"


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--images", type=int, default=2000, help="test images to measure on, the first N (default 2000; 0 = all)"
    )


def settings(args: argparse.Namespace) -> dict:
    from reslab.errors import UserError

    if args.images < 0:
        raise UserError(f"--images must be 0 (all) or a positive number of test images, got {args.images}")
    return {"images": args.images}


def needs(trained: TrainedRun) -> str | None:
    return None


def blocks(net: nn.Module) -> list[tuple[str, Block]]:
    """The net's blocks in forward order with their names (``stage2.block1``)."""
    return [(name, m) for name, m in net.named_modules() if isinstance(m, Block)]


def deletable(block: Block) -> bool:
    """A residual block always (its shortcut stays); a plain block only where it keeps the shape."""
    return block.shortcut is not None or (
        block.conv1.stride == (1, 1) and block.conv1.in_channels == block.conv1.out_channels
    )


def deleted_forward(block: Block):
    if block.shortcut is not None:
        return lambda x: F.relu(block.shortcut(x))
    return lambda x: x


@contextlib.contextmanager
def deleted(block: Block):
    """``block`` deleted while inside: its forward replaced by what is left of it (see the module's docstring)."""
    block.forward = deleted_forward(block)
    try:
        yield
    finally:
        del block.forward  # back to the class's forward


def measure(trained: TrainedRun, settings: dict) -> dict[str, np.ndarray]:
    net = trained.net("trained")
    x, y = trained.images("test", settings["images"] or None)
    base_loss, base_error = evaluate(net, x, y)
    found = blocks(net)
    errors, losses = np.full(len(found), np.nan), np.full(len(found), np.nan)
    for i, (_, block) in enumerate(found):
        if deletable(block):
            with deleted(block):
                losses[i], errors[i] = evaluate(net, x, y)
    return {
        "blocks": np.array([name for name, _ in found]),
        "downsampling": np.array([b.conv1.stride != (1, 1) for _, b in found]),
        "error": errors,
        "loss": losses,
        "base_error": np.array(base_error),
        "base_loss": np.array(base_loss),
        "images": np.array(len(y)),
    }


def scalars(arrays: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    position = np.arange(1, len(arrays["error"]) + 1)
    return {"analysis/lesion/test_error_by_deleted_block": (position, arrays["error"])}

"""Lesion study (Veit, Wilber and Belongie 2016, §4.1-4.2): delete blocks or reorder them at test time, measure
test error.

Deleting residual block ``i`` removes its residual branch and keeps its shortcut: the block's output becomes
``relu(shortcut(x))``, which is ``x`` itself where the shape stays (``x`` is already the output of a ReLU), and the
subsampled, zero-padded ``x`` (option A) or the 1×1 projection (option B) at a downsampling block. A plain block
has no shortcut, so deleting it means passing its input on unchanged, ``x``; that is possible only where the block
keeps the shape. The first block of stages 2 and 3 halves the resolution and doubles the channels, so in a plain
net it cannot be deleted, and its lesion is missing (NaN) rather than replaced by something the net never had.

Several at once (their Fig. 5a): k blocks drawn at random among the deletable ones, deleted together, for k = 1 up
to ``--max-blocks``, ``--samples`` draws each. Reordered (their Fig. 5b): k swaps, each of two blocks drawn at random
from one stage among those that keep the shape (the downsampling block opening a stage stays), the net then running
every swapped block in the other's place. Both draws come from a generator seeded by ``--seed``, the same for every
run, so the arms are compared on the same positions where they have the same deletable blocks.

Nothing else changes: BN running statistics stay as trained, the rest of the net is untouched. Veit et al. found
that residual nets barely notice the loss of one block except at downsampling blocks, and degrade smoothly as more
are deleted or reordered, while plain nets collapse to chance; this measures it on the run at hand.
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
    parser.add_argument(
        "--max-blocks", type=int, default=8, help="delete or swap up to k blocks at once (default 8; 0 = one only)"
    )
    parser.add_argument("--samples", type=int, default=10, help="random draws per k (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")


def settings(args: argparse.Namespace) -> dict:
    from reslab.errors import UserError

    if args.images < 0:
        raise UserError(f"--images must be 0 (all) or a positive number of test images, got {args.images}")
    if args.max_blocks < 0:
        raise UserError(f"--max-blocks must be 0 (one block at a time) or a positive number, got {args.max_blocks}")
    if args.samples < 1:
        raise UserError(f"--samples must be a positive number of random draws, got {args.samples}")
    if args.seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {args.seed}")
    return {"images": args.images, "max_blocks": args.max_blocks, "samples": args.samples, "seed": args.seed}


def needs(trained: TrainedRun) -> str | None:
    return None


def blocks(net: nn.Module) -> list[tuple[str, Block]]:
    """The net's blocks in forward order with their names (``stage2.block1``)."""
    return [(name, m) for name, m in net.named_modules() if isinstance(m, Block)]


def deletable(block: Block) -> bool:
    """A residual block always (its shortcut stays); a plain block only where it keeps the shape."""
    return block.shortcut is not None or keeps_shape(block)


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
    out = {
        "blocks": np.array([name for name, _ in found]),
        "downsampling": np.array([b.conv1.stride != (1, 1) for _, b in found]),
        "error": errors,
        "loss": losses,
        "base_error": np.array(base_error),
        "base_loss": np.array(base_loss),
        "images": np.array(len(y)),
    }
    if settings.get("max_blocks"):
        rng = np.random.default_rng(settings["seed"])
        out.update(several_deleted(net, x, y, found, settings["max_blocks"], settings["samples"], rng))
        out.update(reordered(net, x, y, found, settings["max_blocks"], settings["samples"], rng))
    return out


def several_deleted(net, x, y, found, most: int, samples: int, rng) -> dict[str, np.ndarray]:
    """Test error with k deletable blocks deleted together, k = 1..min(most, deletable), ``samples`` draws each:
    ``deleted_k`` (K,), ``deleted_error`` (K × samples)."""
    candidates = [block for _, block in found if deletable(block)]
    ks = np.arange(1, min(most, len(candidates)) + 1)
    errors = np.full((len(ks), samples), np.nan)
    for i, k in enumerate(ks):
        for s in range(samples):
            chosen = rng.choice(len(candidates), size=k, replace=False)
            with contextlib.ExitStack() as stack:
                for c in chosen:
                    stack.enter_context(deleted(candidates[c]))
                errors[i, s] = evaluate(net, x, y)[1]
    return {"deleted_k": ks, "deleted_error": errors}


def keeps_shape(block: Block) -> bool:
    return block.conv1.stride == (1, 1) and block.conv1.in_channels == block.conv1.out_channels


def swappable_pairs(found: list[tuple[str, Block]]) -> list[tuple[int, int]]:
    """Positions of two blocks of one stage that both keep the shape (the downsampling block that opens stages 2
    and 3 stays in place)."""
    keep = [i for i, (_, block) in enumerate(found) if keeps_shape(block)]
    stage = {i: found[i][0].split(".")[0] for i in keep}
    return [(a, b) for a in keep for b in keep if a < b and stage[a] == stage[b]]


def reordered(net, x, y, found, most: int, samples: int, rng) -> dict[str, np.ndarray]:
    """Test error after k random swaps of two blocks of one stage, k = 1..most, ``samples`` draws each:
    ``swapped_k`` (K,), ``swapped_error`` (K × samples). Block ``order[p]`` runs at position ``p``."""
    pairs = swappable_pairs(found)
    ks = np.arange(1, most + 1) if pairs else np.arange(0)
    errors = np.full((len(ks), samples), np.nan)
    modules = [block for _, block in found]
    for i, k in enumerate(ks):
        for s in range(samples):
            order = list(range(len(modules)))
            for pair in rng.choice(len(pairs), size=k, replace=True):
                a, b = pairs[pair]
                order[a], order[b] = order[b], order[a]
            try:
                for position, block in enumerate(modules):  # the class's forward of the block that runs here
                    block.forward = type(modules[order[position]]).forward.__get__(modules[order[position]])
                errors[i, s] = evaluate(net, x, y)[1]
            finally:
                for block in modules:
                    block.__dict__.pop("forward", None)
    return {"swapped_k": ks, "swapped_error": errors}


def scalars(arrays: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    position = np.arange(1, len(arrays["error"]) + 1)
    return {"analysis/lesion/test_error_by_deleted_block": (position, arrays["error"])}

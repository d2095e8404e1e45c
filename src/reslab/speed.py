"""How the net is laid out and compiled for its device: channels-last memory and optional ``torch.compile``.

``trainer.channels_last`` (default true) stores weights and activations as NHWC. oneDNN on the CPU and cuDNN
on the GPU run 3×3 convolutions faster that way: on the 2-core dev CPU the benchmark's plain loop ran 24–46%
more images/s than in NCHW (commit 58142dc against 6130b36, experiments/performance/). Same maths, other
rounding: see experiments/gradient_precision/ for what that does to a 110-layer plain net's gradients. The
data module converts each input batch after normalising it, so every conv sees NHWC.

``trainer.compile`` (default false) compiles the net with ``torch.compile`` in one of its modes;
``reduce-overhead`` adds CUDA graphs, which matter on a GPU because these small nets are launch-bound at
batch 128. The net is compiled in place (``nn.Module.compile``), so parameter names, checkpoints and the
instruments' layer names are those of the uncompiled net: a compiled run resumes uncompiled and vice versa.
"""

from __future__ import annotations

import torch
from torch import nn

from reslab.errors import UserError

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(value: object) -> str | None:
    """The config's ``trainer.compile`` as a ``torch.compile`` mode, or None for no compilation."""
    if value is None or value is False or value in ("false", "off", "none"):
        return None
    if value is True:
        return "default"
    if value not in COMPILE_MODES:
        raise UserError(f"unknown trainer.compile={value!r}; choose false or one of: {', '.join(COMPILE_MODES)}")
    return str(value)


def prepare_net(net: nn.Module, channels_last: bool, compile: object = False) -> nn.Module:
    """Lay out ``net`` as channels-last and compile it, in place, as configured; returns it."""
    mode = compile_mode(compile)
    if channels_last:
        net.to(memory_format=torch.channels_last)  # later .to(device) preserves the layout
    if mode is not None:
        net.compile(mode=mode)
    return net


def memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-d input batch in the layout the net was prepared for."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def is_compiled(net: nn.Module) -> bool:
    # nn.Module.compile() stores the compiled call here; torch has no public query for an in-place compile.
    return getattr(net, "_compiled_call_impl", None) is not None

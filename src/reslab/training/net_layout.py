"""The net's memory layout and compilation.

``runtime.channels_last`` stores weights and activations as NHWC, which oneDNN (CPU) and cuDNN (GPU) run faster; the
data module converts each batch after normalising it (`reslab.data.datamodule`), so every conv sees NHWC.
``runtime.compile`` compiles the net in place with ``torch.compile`` (``nn.Module.compile``), so parameter names,
checkpoints and the instruments' layer names are those of the uncompiled net: a compiled run resumes uncompiled and
vice versa."""

from __future__ import annotations

import torch
from torch import nn

from reslab.schema import check_choice


def compile_mode(value: object) -> str | None:
    """The config's ``runtime.compile`` as a ``torch.compile`` mode, or None for no compilation."""
    if value is None:
        return None
    if value is True:
        return "default"
    word = check_choice("runtime.compile", value)
    return None if word == "false" else word


def prepare_net(net: nn.Module, channels_last: bool, compile: object = False) -> nn.Module:
    """Lay out ``net`` as channels-last and compile it, in place, as configured; returns it."""
    mode = compile_mode(compile)
    if channels_last:
        net.to(memory_format=torch.channels_last)  # later .to(device) preserves the layout
    if mode is not None:
        net.compile(mode=mode)
    return net


def is_compiled(net: nn.Module) -> bool:
    # nn.Module.compile() stores the compiled call here; torch has no public query for an in-place compile.
    return getattr(net, "_compiled_call_impl", None) is not None

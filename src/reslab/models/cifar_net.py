"""Plain and residual CIFAR nets of He et al. 2016, §4.2, from one builder.

A 3×3 stem conv (16 filters), three stages of ``2n`` 3×3 conv layers with 16/32/64 filters (stride 2 at the
first conv of stages 2 and 3), BN after every conv, global average pooling and a linear classifier:
``6n + 2`` weighted layers. The two arms differ in one flag, the shortcut:

- ``none``: plain net, the block's output is ``relu(bn2(conv2(...)))`` with nothing added;
- ``A``: identity shortcut; where the shape changes, stride-2 subsampling plus zero-padded channels
  (parameter-free, so plain and option-A nets of one depth have exactly the same parameters);
- ``B``: identity, except a 1×1 conv + BN projection where the shape changes.

Parameter counts (10 classes, 3 input channels, width 16), matching the paper's Table 6:

=====  ==  =========
depth  n   params
=====  ==  =========
20     3   0.27M
32     5   0.46M
44     7   0.66M
56     9   0.85M
110    18  1.7M
1202   200 19.4M
=====  ==  =========

Without batch norm (``norm="none"``) every BN becomes an identity and the convs get a bias instead (BN's shift);
the init stays Kaiming's. ``zero_init_residual`` starts each residual branch at zero (its last BN's scale, or with
no BN its last conv, as Fixup does), so every residual block starts as the identity.

Module names are stable and ordered by depth: ``stem.conv``, ``stage1.block1.conv1``, ...,
``stage3.block{n}.conv2``, ``fc``. Gradient-norm tags and plots are keyed by these names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reslab.errors import UserError
from reslab.schema import check_choice, check_depth


def norm_layer(norm: str, channels: int) -> nn.Module:
    """BN, or nothing (an identity, so that module names and the instruments' hooks stay the same)."""
    return nn.BatchNorm2d(channels) if norm == "batch" else nn.Identity()


def blocks_per_stage(depth: int) -> int:
    """``n`` for a depth of ``6n + 2``; a `UserError` naming the nearest valid depths otherwise."""
    return check_depth(depth)


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and zero-pad the new channels; no parameters."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def make_shortcut(shortcut: str, in_ch: int, out_ch: int, stride: int, norm: str = "batch") -> nn.Module | None:
    """The module added to a block's output, or None for the plain arm."""
    if shortcut == "none":
        return None
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    if shortcut == "A":
        return ZeroPadShortcut(stride, out_ch - in_ch)
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=norm == "none"), norm_layer(norm, out_ch))


class Block(nn.Module):
    """Two 3×3 conv-BN layers; adds the shortcut before the last ReLU unless the arm is plain."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, shortcut: str, norm: str = "batch"):
        super().__init__()
        bias = norm == "none"  # without BN, a conv keeps the shift BN would have given it
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=bias)
        self.bn1 = norm_layer(norm, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=bias)
        self.bn2 = norm_layer(norm, out_ch)
        self.shortcut = make_shortcut(shortcut, in_ch, out_ch, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))  # the "response" of He et al. Fig. 7: after BN, before the addition
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return F.relu(out)


class Stem(nn.Module):
    def __init__(self, in_channels: int, width: int, norm: str = "batch"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=norm == "none")
        self.bn = norm_layer(norm, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class CifarNet(nn.Module):
    """The §4.2 net; ``shortcut`` selects the arm. Input (B, C, H, W) -> logits (B, num_classes).

    The config's ``model`` node holds these arguments (``_target_: reslab.models.CifarNet``) but depth and the data's
    channels and classes, which `reslab.build.build_net` adds; ``name`` is the arm's name, a label only."""

    def __init__(
        self,
        depth: int,
        shortcut: str = "A",
        in_channels: int = 3,
        num_classes: int = 10,
        width: int = 16,
        norm: str = "batch",
        zero_init_residual: bool = False,
        name: str = "",
    ):
        super().__init__()
        self.arm = name
        check_choice("model.shortcut", shortcut)
        check_choice("model.norm", norm)
        if zero_init_residual and shortcut == "none":
            raise UserError(
                "model.zero_init_residual=true needs a residual arm: a plain block has no shortcut, so zeroing its "
                "last layer would cut the net; use model=residual or zero_init_residual=false"
            )
        n = blocks_per_stage(depth)
        self.depth, self.shortcut, self.norm, self.zero_init_residual = depth, shortcut, norm, zero_init_residual
        self.stem = Stem(in_channels, width, norm)
        widths = (width, 2 * width, 4 * width)
        in_ch = width
        for s, out_ch in enumerate(widths, start=1):
            stage = nn.Sequential()
            for b in range(1, n + 1):
                stride = 2 if (s > 1 and b == 1) else 1
                stage.add_module(f"block{b}", Block(in_ch, out_ch, stride, shortcut, norm))
                in_ch = out_ch
            self.add_module(f"stage{s}", stage)
        self.fc = nn.Linear(in_ch, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming (He) init for convs and the classifier, BN at weight 1 / bias 0; with ``zero_init_residual``,
        each residual branch's last scale (BN) or conv (no BN) at 0, so every residual block starts as the identity."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.zero_init_residual:
            for block in self.modules():
                if isinstance(block, Block):
                    last = block.bn2 if isinstance(block.bn2, nn.BatchNorm2d) else block.conv2
                    nn.init.zeros_(last.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stage3(self.stage2(self.stage1(x)))
        x = x.mean(dim=(2, 3))  # global average pooling: (B, 4*width)
        return self.fc(x)


def weight_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The conv and linear layers in forward (depth) order, with their stable names."""
    return [(name, m) for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def depth_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers the depth counts (6n+2: the stem, each block's two 3×3 convs, the classifier), in order. Option
    B's 1×1 projection shortcuts are left out, so layer k is the same layer in every arm (the instruments' index)."""
    return [(name, m) for name, m in weight_layers(net) if ".shortcut" not in name]


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())

"""The nets: plain and residual CIFAR nets of He et al. 2016, §4.2, from one builder."""

from reslab.models.cifar_net import (
    CifarNet,
    blocks_per_stage,
    build_net,
    count_parameters,
    depth_layers,
    weight_layers,
)

__all__ = ["CifarNet", "blocks_per_stage", "build_net", "count_parameters", "depth_layers", "weight_layers"]

"""The nets: plain and residual CIFAR nets of He et al. 2016, §4.2, from one class (built from the config by
`reslab.build.build_net`)."""

from reslab.models.cifar_net import (
    CifarNet,
    blocks_per_stage,
    count_parameters,
    depth_layers,
    weight_layers,
)

__all__ = ["CifarNet", "blocks_per_stage", "count_parameters", "depth_layers", "weight_layers"]

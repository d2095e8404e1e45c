"""What each dataset is (channels, classes, image size, normalisation) and the `Arrays` every source returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reslab.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    in_channels: int
    num_classes: int
    image_size: int
    mean: tuple[float, ...]  # per-channel mean of the training images, 0..1 scale
    std: tuple[float, ...]


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 3, 10, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo("cifar100", 3, 100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "fashion_mnist": DatasetInfo("fashion_mnist", 1, 10, 28, (0.2860,), (0.3530,)),
    "mnist": DatasetInfo("mnist", 1, 10, 28, (0.1307,), (0.3081,)),
    "synthetic": DatasetInfo("synthetic", 3, 10, 32, (0.5, 0.5, 0.5), (0.22, 0.22, 0.22)),
}


@dataclass(frozen=True)
class Arrays:
    train_x: torch.Tensor  # uint8, (N, C, H, W)
    train_y: torch.Tensor  # int64, (N,)
    test_x: torch.Tensor  # uint8, (M, C, H, W)
    test_y: torch.Tensor  # int64, (M,)


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]

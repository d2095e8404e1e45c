"""Raw datasets as uint8 tensors: CIFAR-10/100, (Fashion-)MNIST and an in-memory synthetic task.

Files are looked up in ``data_dir`` (and, for Fashion-MNIST, where Debian's ``dataset-fashion-mnist``
installs them) before anything is downloaded. Downloaded files and archives are checked against their
published md5; files already on disk are checked structurally (gzip integrity, IDX header and sizes, pickle
contents), because Debian recompresses its copies. Every failure is a one-line `DataError` saying what was
looked for, where, and how to fix it; there is never a fallback to another dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from reslab.data.cifar import CIFAR_SOURCES, load_cifar
from reslab.data.idx import load_idx
from reslab.data.registry import DATASETS, Arrays, DatasetInfo, dataset_info
from reslab.errors import DataError

__all__ = ["DATASETS", "Arrays", "DatasetInfo", "dataset_info", "load_arrays"]


def load_arrays(
    name: str,
    data_dir: str | os.PathLike,
    *,
    download: bool = True,
    seed: int = 0,
    synthetic_train: int = 2048,
    synthetic_test: int = 512,
    verify: bool = True,
) -> Arrays:
    """The train and test images (uint8, N×C×H×W) and labels (int64) of dataset `name`. ``verify``: refuse files
    whose md5 is not the official one (files already on disk are otherwise checked only for their format)."""
    info = dataset_info(name)
    if name == "synthetic":
        return _synthetic(info, seed, synthetic_train, synthetic_test)
    if name in CIFAR_SOURCES:
        return load_cifar(info, Path(data_dir), download, verify)
    return load_idx(info, Path(data_dir), download, verify)


def _synthetic(info: DatasetInfo, seed: int, n_train: int, n_test: int) -> Arrays:
    """Each class is a fixed smooth random colour pattern; an image is its class pattern plus pixel noise.

    The patterns are 4×4 random fields upsampled to 32×32, so a small CNN separates them within ~100 SGD
    steps, while the per-pixel noise keeps a single pixel from giving the class away.
    """
    if n_train < 1 or n_test < 1:
        raise DataError(f"synthetic: synthetic_train={n_train} and synthetic_test={n_test} must both be >= 1")
    g = torch.Generator().manual_seed(seed)
    size, c = info.image_size, info.in_channels
    coarse = torch.randn(info.num_classes, c, 4, 4, generator=g)
    templates = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    templates = templates / templates.std(dim=(1, 2, 3), keepdim=True)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, info.num_classes, (n,), generator=g)
        noise = torch.randn(n, c, size, size, generator=g)
        x = 127.5 + 40.0 * templates[y] + 40.0 * noise
        return x.round().clamp(0, 255).to(torch.uint8), y

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    return Arrays(train_x, train_y, test_x, test_y)

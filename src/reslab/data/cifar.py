"""CIFAR-10/100 from the official python pickles: the archive md5-checked, the pickles read with an unpickler
that allows only what CIFAR batches hold."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reslab.data.download import cause, extract, file_md5, obtain
from reslab.data.registry import Arrays, DatasetInfo
from reslab.errors import DataError


@dataclass(frozen=True)
class _CifarSource:
    folder: str  # what the archive extracts to
    archive: str
    md5: str  # of the archive
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: bytes
    batch_md5s: dict[str, str]  # of each extracted batch file, as published with the archive


_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
CIFAR_SOURCES = {
    "cifar10": _CifarSource(
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        b"labels",
        {
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
        },
    ),
    "cifar100": _CifarSource(
        "cifar-100-python",
        "cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        ("train",),
        ("test",),
        b"fine_labels",
        {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"},
    ),
}


class _CifarUnpickler(pickle.Unpickler):
    """Allows only what CIFAR batches hold (dicts, lists, bytes, numpy arrays): a pickle can run arbitrary
    code, and the folder in data_dir is not checksummed."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")
        return super().find_class(module, name)


def load_cifar(info: DatasetInfo, root: Path, download: bool, verify: bool = True) -> Arrays:
    src = CIFAR_SOURCES[info.name]
    folder, archive = root / src.folder, root / src.archive
    if not folder.is_dir():
        if archive.is_file():
            got = file_md5(archive)
            if got != src.md5:
                raise DataError(
                    f"{info.name}: {archive} has md5 {got}, expected {src.md5}; delete it and rerun to download again"
                )
        else:
            obtain(
                info.name,
                _CIFAR_URL + src.archive,
                archive,
                src.md5,
                data_dir=root,
                download=download,
                missing=f"{info.name}: neither {folder}/ nor {archive} found",
                hint=f"download {_CIFAR_URL + src.archive} into {root}",
            )
        extract(info.name, archive, src.folder, root)
    expected = src.batch_md5s if verify else {}
    train = [_read_batch(info, folder / f, src.label_key, expected.get(f)) for f in src.train]
    test = [_read_batch(info, folder / f, src.label_key, expected.get(f)) for f in src.test]
    return Arrays(
        torch.cat([x for x, _ in train]),
        torch.cat([y for _, y in train]),
        torch.cat([x for x, _ in test]),
        torch.cat([y for _, y in test]),
    )


def _read_batch(info: DatasetInfo, path: Path, label_key: bytes, md5: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch file, checked for its format and then, where ``md5`` is given, for being the official file."""
    fix = f"delete {path.parent} and rerun to extract or download it again"
    if not path.is_file():
        raise DataError(f"{info.name}: {path} is missing; {fix}")
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as e:  # garbled bytes make the unpickler raise almost any exception type
        raise DataError(f"{info.name}: {path} is truncated or corrupt ({cause(e)}); {fix}") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = _int_array(batch.get(label_key) if isinstance(batch, dict) else None)
    pixels = 3 * info.image_size**2
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == pixels
        and labels is not None
        and labels.shape == (len(data),)
    ):
        raise DataError(
            f"{info.name}: {path} is not a CIFAR batch (expected {{b'data': N×{pixels} uint8, "
            f"{label_key!r}: N ints}}); {fix}"
        )
    if len(labels) and not 0 <= labels.min() <= labels.max() < info.num_classes:
        raise DataError(f"{info.name}: {path} has labels outside 0..{info.num_classes - 1}; {fix}")
    if md5 is not None and (got := file_md5(path)) != md5:
        raise DataError(
            f"{info.name}: {path} is not the official {path.name} (md5 {got}, expected {md5}): another split or a "
            f"changed copy; {fix}, or set dataset.verify_checksums=false for files you made yourself"
        )
    # Rows are channel-major (1024 red, 1024 green, 1024 blue), so a plain reshape gives N×3×H×W.
    x = torch.tensor(data).reshape(-1, 3, info.image_size, info.image_size)
    return x, torch.tensor(labels, dtype=torch.int64)


def _int_array(obj: object) -> np.ndarray | None:
    """`obj` (a list or array of ints) as a numpy integer array, or None if it is anything else."""
    try:
        array = np.asarray(obj)
    except ValueError:  # ragged nested lists
        return None
    return array if array.dtype.kind in "iu" else None

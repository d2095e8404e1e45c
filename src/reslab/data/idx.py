"""MNIST and Fashion-MNIST from gzipped IDX files: looked up in data_dir, then where Debian installs them, then
downloaded with an md5 check; files already on disk are checked structurally (gzip, IDX header and sizes),
because Debian recompresses its copies."""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from reslab.data.download import cause, obtain
from reslab.data.registry import Arrays, DatasetInfo
from reslab.errors import DataError


@dataclass(frozen=True)
class _IdxSource:
    url: str  # base URL; file names are appended
    md5s: tuple[str, str, str, str]  # of the .gz files, in _IDX_FILES order
    raw_md5s: tuple[str, str, str, str]  # of their decompressed contents (Debian recompresses its copies)
    system_dirs: tuple[Path, ...]  # read-only places a distribution installs the files to
    hint: str  # how to get the files; "{local}" becomes data_dir/<name>


_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
IDX_SOURCES = {
    "fashion_mnist": _IdxSource(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
        (
            "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "9018921c3c673c538a1fc5bad174d6f9",
            "8181f5470baa50b63fa0f6fddb340f0a",
            "15d484375f8d13e6eb1aabb0c3f46965",
        ),
        (Path("/usr/share/datasets/fashion-mnist"),),
        "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
        "or put the IDX .gz files in {local}",
    ),
    "mnist": _IdxSource(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
        (
            "6bbc9ace898e44ae57da46a324031adb",
            "a25bea736e30d166cdddb491f175f624",
            "2646ac647ad5339dbf082846283269ea",
            "27ae3e4e09519cfbb04c329615203637",
        ),
        (),
        "put the IDX .gz files from https://ossci-datasets.s3.amazonaws.com/mnist/ in {local}",
    ),
}
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801  # magic: uint8 data, 3 resp. 1 dimensions


def load_idx(info: DatasetInfo, root: Path, download: bool, verify: bool = True) -> Arrays:
    src = IDX_SOURCES[info.name]
    local = root / info.name
    hint = src.hint.format(local=local)
    paths = []
    for fname, md5 in zip(_IDX_FILES, src.md5s):
        dirs = (local, *src.system_dirs)
        path = next((d / fname for d in dirs if (d / fname).is_file()), None)
        if path is None:
            path = local / fname
            obtain(
                info.name,
                src.url + fname,
                path,
                md5,
                data_dir=root,
                download=download,
                hint=hint,
                missing=f"{info.name}: {fname} not found in {' or '.join(map(str, dirs))}",
            )
        paths.append(path)
    raw = src.raw_md5s if verify else (None,) * 4
    return Arrays(
        *_idx_pair(info, (paths[0], raw[0]), (paths[1], raw[1]), hint),
        *_idx_pair(info, (paths[2], raw[2]), (paths[3], raw[3]), hint),
    )


def _idx_pair(info: DatasetInfo, images: tuple, labels: tuple, hint: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels from (path, md5 of the contents or None) each."""
    x, y = _images(info, *images), _labels(info, *labels)
    images, labels = images[0], labels[0]
    if len(x) != len(y):
        raise DataError(
            f"{info.name}: {images} holds {len(x)} images but {labels} holds {len(y)} labels; "
            f"delete both and rerun, or {hint}"
        )
    return x, y


def _read_idx(info: DatasetInfo, path: Path, magic: int, md5: str | None) -> tuple[tuple[int, ...], torch.Tensor]:
    """Header dims and uint8 payload of one gzipped IDX file, after checking it is whole and, where ``md5`` is
    given, that its contents are the official file's (so one split cannot pose as another)."""
    system = any(path.parent == d for d in IDX_SOURCES[info.name].system_dirs)
    fix = (
        "reinstall it (apt-get install --reinstall dataset-fashion-mnist)"
        if system
        else "delete it and rerun to download it again"
    )
    try:
        with gzip.open(path, "rb") as f:
            raw = bytearray(f.read())
    except (OSError, EOFError) as e:  # BadGzipFile is an OSError; zlib.error is an OSError subclass too
        raise DataError(f"{info.name}: {path} is truncated or corrupt ({cause(e)}); {fix}") from None
    found = struct.unpack(">I", raw[:4])[0] if len(raw) >= 4 else None
    if found != magic:
        found = "none" if found is None else f"0x{found:08x}"
        raise DataError(f"{info.name}: {path} has magic number {found}, expected 0x{magic:08x}; {fix}")
    ndim = magic & 0xFF  # the magic's last byte is the number of dimensions
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{info.name}: {path} ends inside its {header}-byte header; {fix}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(dims)
    if len(raw) != expected:
        raise DataError(f"{info.name}: {path} holds {len(raw)} bytes but its header {dims} implies {expected}; {fix}")
    if dims[0] == 0:
        raise DataError(f"{info.name}: {path} holds no items; {fix}")
    if md5 is not None and (got := hashlib.md5(raw).hexdigest()) != md5:
        raise DataError(
            f"{info.name}: {path} is not the official {path.name} (md5 of its contents {got}, expected {md5}): "
            f"another split or a changed copy; {fix}, or set dataset.verify_checksums=false for files you made yourself"
        )
    return dims, torch.frombuffer(raw, dtype=torch.uint8, offset=header)


def _images(info: DatasetInfo, path: Path, md5: str | None) -> torch.Tensor:
    dims, payload = _read_idx(info, path, _IDX_IMAGES, md5)
    if dims[1:] != (info.image_size, info.image_size):
        raise DataError(
            f"{info.name}: {path} holds {dims[1]}×{dims[2]} images, expected "
            f"{info.image_size}×{info.image_size}; delete it and rerun"
        )
    return payload.reshape(dims[0], 1, dims[1], dims[2])


def _labels(info: DatasetInfo, path: Path, md5: str | None) -> torch.Tensor:
    _, payload = _read_idx(info, path, _IDX_LABELS, md5)
    if int(payload.max()) >= info.num_classes:
        raise DataError(f"{info.name}: {path} has labels outside 0..{info.num_classes - 1}; delete it and rerun")
    return payload.to(torch.int64)

"""Raw datasets as uint8 tensors: CIFAR-10/100, (Fashion-)MNIST and an in-memory synthetic task.

Files are looked up in ``data_dir`` (and, for Fashion-MNIST, where Debian's ``dataset-fashion-mnist``
installs them) before anything is downloaded. Downloaded files and archives are checked against their
published md5; files already on disk are checked structurally (gzip integrity, IDX header and sizes, pickle
contents), because Debian recompresses its copies. Every failure is a one-line `DataError` saying what was
looked for, where, and how to fix it; there is never a fallback to another dataset.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

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


@dataclass(frozen=True)
class _CifarSource:
    folder: str  # what the archive extracts to
    archive: str
    md5: str  # of the archive
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: bytes


@dataclass(frozen=True)
class _IdxSource:
    url: str  # base URL; file names are appended
    md5s: tuple[str, str, str, str]  # of the .gz files, in _IDX_FILES order
    system_dirs: tuple[Path, ...]  # read-only places a distribution installs the files to
    hint: str  # how to get the files; "{local}" becomes data_dir/<name>


_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
_CIFAR = {
    "cifar10": _CifarSource("cifar-10-batches-py", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                            tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), b"labels"),
    "cifar100": _CifarSource("cifar-100-python", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                             ("train",), ("test",), b"fine_labels"),
}
_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_IDX = {
    "fashion_mnist": _IdxSource(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
         "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
        (Path("/usr/share/datasets/fashion-mnist"),),
        "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
        "or put the IDX .gz files in {local}"),
    "mnist": _IdxSource(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
         "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
        (),
        "put the IDX .gz files from https://ossci-datasets.s3.amazonaws.com/mnist/ in {local}"),
}
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801  # magic: uint8 data, 3 resp. 1 dimensions


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def load_arrays(name: str, data_dir: str | os.PathLike, *, download: bool = True, seed: int = 0,
                synthetic_train: int = 2048, synthetic_test: int = 512) -> Arrays:
    """The train and test images (uint8, N×C×H×W) and labels (int64) of dataset `name`."""
    info = dataset_info(name)
    if name == "synthetic":
        return _synthetic(info, seed, synthetic_train, synthetic_test)
    if name in _CIFAR:
        return _load_cifar(info, Path(data_dir), download)
    return _load_idx(info, Path(data_dir), download)


def _cause(exc: BaseException) -> str:
    """`Type: message` on one line, for quoting an underlying error inside a DataError."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


# --- downloads -------------------------------------------------------------------------------------------

def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _temp_in(directory: Path, data_dir: Path, *, folder: bool = False) -> Path:
    """A fresh temp file (or folder) in `directory`, so the final rename is atomic (same filesystem)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if folder:
            return Path(tempfile.mkdtemp(dir=directory, prefix=".extract-"))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".part-")
        os.close(fd)
        return Path(tmp)
    except OSError as e:
        raise DataError(f"data_dir {data_dir} is not writable ({_cause(e)}); "
                        f"set data_dir=<a writable path>") from None


def _obtain(name: str, url: str, dest: Path, md5: str, *, data_dir: Path, download: bool, missing: str,
            hint: str) -> None:
    """Download `url` to `dest`; the file only appears there once its md5 has been checked."""
    if not download:
        raise DataError(f"{missing} (downloads are off); {hint}, or set dataset.download=true")
    tmp = _temp_in(dest.parent, data_dir)
    try:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except OSError as e:  # URLError, HTTPError, timeouts and a full disk are all OSErrors
            raise DataError(f"{missing}, and download of {url} failed ({_cause(e)}); {hint}") from None
        got = _md5(tmp)
        if got != md5:
            raise DataError(f"{name}: download of {url} has md5 {got}, expected {md5}; rerun later, or {hint}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


# --- CIFAR -----------------------------------------------------------------------------------------------

class _CifarUnpickler(pickle.Unpickler):
    """Allows only what CIFAR batches hold (dicts, lists, bytes, numpy arrays): a pickle can run arbitrary
    code, and the folder in data_dir is not checksummed."""

    _ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                          ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")})

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")
        return super().find_class(module, name)


def _load_cifar(info: DatasetInfo, root: Path, download: bool) -> Arrays:
    src = _CIFAR[info.name]
    folder, archive = root / src.folder, root / src.archive
    if not folder.is_dir():
        if archive.is_file():
            got = _md5(archive)
            if got != src.md5:
                raise DataError(f"{info.name}: {archive} has md5 {got}, expected {src.md5}; "
                                f"delete it and rerun to download again")
        else:
            _obtain(info.name, _CIFAR_URL + src.archive, archive, src.md5, data_dir=root, download=download,
                    missing=f"{info.name}: neither {folder}/ nor {archive} found",
                    hint=f"download {_CIFAR_URL + src.archive} into {root}")
        _extract(info.name, archive, src.folder, root)
    train = [_read_batch(info, folder / f, src.label_key) for f in src.train]
    test = [_read_batch(info, folder / f, src.label_key) for f in src.test]
    return Arrays(torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]),
                  torch.cat([x for x, _ in test]), torch.cat([y for _, y in test]))


def _extract(name: str, archive: Path, folder: str, root: Path) -> None:
    """Extract `folder` from `archive` via a temp dir, so an interrupted run leaves no half folder behind."""
    tmp = _temp_in(root, root, folder=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if Path(m.name).parts[:1] == (folder,)]
            if not members:
                raise DataError(f"{name}: {archive} holds no {folder}/; delete it and rerun to download again")
            tar.extractall(tmp, members=members, filter="data")
        os.replace(tmp / folder, root / folder)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{name}: cannot extract {archive} ({_cause(e)}); delete it and rerun") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_batch(info: DatasetInfo, path: Path, label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    fix = f"delete {path.parent} and rerun to extract or download it again"
    if not path.is_file():
        raise DataError(f"{info.name}: {path} is missing; {fix}")
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as e:  # garbled bytes make the unpickler raise almost any exception type
        raise DataError(f"{info.name}: {path} is truncated or corrupt ({_cause(e)}); {fix}") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = _int_array(batch.get(label_key) if isinstance(batch, dict) else None)
    pixels = 3 * info.image_size ** 2
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == pixels and labels is not None and labels.shape == (len(data),)):
        raise DataError(f"{info.name}: {path} is not a CIFAR batch (expected {{b'data': N×{pixels} uint8, "
                        f"{label_key!r}: N ints}}); {fix}")
    if len(labels) and not 0 <= labels.min() <= labels.max() < info.num_classes:
        raise DataError(f"{info.name}: {path} has labels outside 0..{info.num_classes - 1}; {fix}")
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


# --- IDX (MNIST, Fashion-MNIST) --------------------------------------------------------------------------

def _load_idx(info: DatasetInfo, root: Path, download: bool) -> Arrays:
    src = _IDX[info.name]
    local = root / info.name
    hint = src.hint.format(local=local)
    paths = []
    for fname, md5 in zip(_IDX_FILES, src.md5s):
        dirs = (local, *src.system_dirs)
        path = next((d / fname for d in dirs if (d / fname).is_file()), None)
        if path is None:
            path = local / fname
            _obtain(info.name, src.url + fname, path, md5, data_dir=root, download=download, hint=hint,
                    missing=f"{info.name}: {fname} not found in {' or '.join(map(str, dirs))}")
        paths.append(path)
    return Arrays(*_idx_pair(info, paths[0], paths[1], hint), *_idx_pair(info, paths[2], paths[3], hint))


def _idx_pair(info: DatasetInfo, images: Path, labels: Path, hint: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _images(info, images), _labels(info, labels)
    if len(x) != len(y):
        raise DataError(f"{info.name}: {images} holds {len(x)} images but {labels} holds {len(y)} labels; "
                        f"delete both and rerun, or {hint}")
    return x, y


def _read_idx(info: DatasetInfo, path: Path, magic: int) -> tuple[tuple[int, ...], torch.Tensor]:
    """Header dims and uint8 payload of one gzipped IDX file, after checking it is whole."""
    system = any(path.parent == d for d in _IDX[info.name].system_dirs)
    fix = ("reinstall it (apt-get install --reinstall dataset-fashion-mnist)" if system
           else "delete it and rerun to download it again")
    try:
        with gzip.open(path, "rb") as f:
            raw = bytearray(f.read())
    except (OSError, EOFError) as e:  # BadGzipFile is an OSError; zlib.error is an OSError subclass too
        raise DataError(f"{info.name}: {path} is truncated or corrupt ({_cause(e)}); {fix}") from None
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
        raise DataError(f"{info.name}: {path} holds {len(raw)} bytes but its header {dims} implies {expected}; "
                        f"{fix}")
    if dims[0] == 0:
        raise DataError(f"{info.name}: {path} holds no items; {fix}")
    return dims, torch.frombuffer(raw, dtype=torch.uint8, offset=header)


def _images(info: DatasetInfo, path: Path) -> torch.Tensor:
    dims, payload = _read_idx(info, path, _IDX_IMAGES)
    if dims[1:] != (info.image_size, info.image_size):
        raise DataError(f"{info.name}: {path} holds {dims[1]}×{dims[2]} images, expected "
                        f"{info.image_size}×{info.image_size}; delete it and rerun")
    return payload.reshape(dims[0], 1, dims[1], dims[2])


def _labels(info: DatasetInfo, path: Path) -> torch.Tensor:
    _, payload = _read_idx(info, path, _IDX_LABELS)
    if int(payload.max()) >= info.num_classes:
        raise DataError(f"{info.name}: {path} has labels outside 0..{info.num_classes - 1}; delete it and rerun")
    return payload.to(torch.int64)


# --- synthetic -------------------------------------------------------------------------------------------

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

"""reslab.data.sources on small files written in the real formats (CIFAR pickles, gzipped IDX); no network."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import shutil
import struct
import tarfile
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from reslab.data import cifar, idx
from reslab.data.sources import DATASETS, dataset_info, load_arrays
from reslab.errors import DataError, UserError

IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download attempt fails fast, as it would offline; tests that serve bytes override this."""

    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def no_system_dirs(monkeypatch, tmp_path):
    """Hide /usr/share/datasets/fashion-mnist so 'missing file' tests do not find Debian's copy."""
    gone = tmp_path / "no-system-dir"
    monkeypatch.setitem(
        idx.IDX_SOURCES, "fashion_mnist", replace(idx.IDX_SOURCES["fashion_mnist"], system_dirs=(gone,))
    )
    return gone


def load_unverified(*args, **kwargs):
    """The files these tests write are in the real formats but are not the official files."""
    return load_arrays(*args, verify=False, **kwargs)


def data_error(fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    assert isinstance(info.value, UserError)
    return message


# --- writers for the real formats ----------------------------------------------------------------------


def cifar_batch(rng: np.random.Generator, n: int, label_key: bytes, num_classes: int) -> dict:
    return {
        b"batch_label": b"testing batch",
        label_key: rng.integers(0, num_classes, n).tolist(),
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }


def write_pickle(path: Path, obj) -> None:
    """Protocol 2 and numpy's pre-2.0 module name, like the official (Python 2 era) files."""
    path.write_bytes(pickle.dumps(obj, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))


def write_cifar10(root: Path, per_batch: int = 3) -> tuple[list[dict], dict]:
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = [cifar_batch(rng, per_batch, b"labels", 10) for _ in range(5)]
    for i, batch in enumerate(train, 1):
        write_pickle(folder / f"data_batch_{i}", batch)
    test = cifar_batch(rng, per_batch + 1, b"labels", 10)
    write_pickle(folder / "test_batch", test)
    return train, test


def idx_bytes(array: np.ndarray, magic: int | None = None, count: int | None = None) -> bytes:
    magic = (0x0800 | array.ndim) if magic is None else magic
    dims = list(array.shape)
    dims[0] = dims[0] if count is None else count
    return struct.pack(f">I{len(dims)}I", magic, *dims) + array.astype(np.uint8).tobytes()


def write_idx(folder: Path, n_train: int = 5, n_test: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        IDX_NAMES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        IDX_NAMES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        IDX_NAMES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        IDX_NAMES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(array)))
    return arrays


# --- registry ------------------------------------------------------------------------------------------


def test_unknown_dataset_lists_choices():
    message = data_error(dataset_info, "foo")
    assert message == "unknown dataset 'foo'; choose one of: cifar10, cifar100, fashion_mnist, mnist, synthetic"
    data_error(load_arrays, "imagenet", "data")


def test_registry_is_consistent():
    assert set(DATASETS) == {"cifar10", "cifar100", "fashion_mnist", "mnist", "synthetic"}
    for name, info in DATASETS.items():
        assert info.name == name and len(info.mean) == len(info.std) == info.in_channels
    assert dataset_info("cifar100").num_classes == 100 and dataset_info("mnist").image_size == 28


# --- CIFAR ---------------------------------------------------------------------------------------------


def test_cifar10_round_trip(tmp_path):
    train, test = write_cifar10(tmp_path)
    a = load_unverified("cifar10", tmp_path, download=False)
    assert a.train_x.shape == (15, 3, 32, 32) and a.test_x.shape == (4, 3, 32, 32)
    assert a.train_x.dtype == a.test_x.dtype == torch.uint8
    assert a.train_y.dtype == a.test_y.dtype == torch.int64
    rows = np.concatenate([b[b"data"] for b in train])
    # Channel-major rows: pixel (c, h, w) is byte c*1024 + h*32 + w.
    assert np.array_equal(a.train_x.numpy(), rows.reshape(15, 3, 32, 32))
    assert a.train_x[4, 2, 1, 3].item() == rows[4, 2 * 1024 + 1 * 32 + 3]
    assert a.train_y.tolist() == sum((b[b"labels"] for b in train), [])
    assert np.array_equal(a.test_x.numpy().reshape(4, -1), test[b"data"]) and a.test_y.tolist() == test[b"labels"]


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train, test = cifar_batch(rng, 6, b"fine_labels", 100), cifar_batch(rng, 2, b"fine_labels", 100)
    for batch in (train, test):
        batch[b"coarse_labels"] = [0] * len(batch[b"fine_labels"])
    train[b"fine_labels"][0] = 99
    write_pickle(folder / "train", train)
    write_pickle(folder / "test", test)
    a = load_unverified("cifar100", tmp_path, download=False)
    assert a.train_x.shape == (6, 3, 32, 32) and a.test_x.shape == (2, 3, 32, 32)
    assert a.train_y.tolist() == train[b"fine_labels"] and a.test_y.tolist() == test[b"fine_labels"]
    assert np.array_equal(a.train_x.numpy().reshape(6, -1), train[b"data"])


def make_archive(src_root: Path, dest: Path) -> str:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(src_root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return hashlib.md5(dest.read_bytes()).hexdigest()


def test_cifar_archive_with_wrong_md5(tmp_path):
    write_cifar10(tmp_path / "src")
    (tmp_path / "data").mkdir()
    archive = tmp_path / "data" / "cifar-10-python.tar.gz"
    got = make_archive(tmp_path / "src", archive)
    message = data_error(load_unverified, "cifar10", tmp_path / "data")
    assert f"{archive} has md5 {got}, expected c58f30108f718f92721af3b95e74349a" in message
    assert "delete it" in message and not (tmp_path / "data" / "cifar-10-batches-py").exists()


def test_cifar_archive_is_extracted(tmp_path, monkeypatch):
    train, _ = write_cifar10(tmp_path / "src")
    (tmp_path / "data").mkdir()
    md5 = make_archive(tmp_path / "src", tmp_path / "data" / "cifar-10-python.tar.gz")
    monkeypatch.setitem(cifar.CIFAR_SOURCES, "cifar10", replace(cifar.CIFAR_SOURCES["cifar10"], md5=md5))
    a = load_unverified("cifar10", tmp_path / "data", download=False)
    assert (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").is_file()
    assert np.array_equal(a.train_x[:3].numpy().reshape(3, -1), train[0][b"data"])
    assert [p.name for p in (tmp_path / "data").iterdir() if p.name.startswith(".")] == []  # no temp leftovers


def test_cifar_missing_without_download(tmp_path):
    message = data_error(load_unverified, "cifar10", tmp_path, download=False)
    assert str(tmp_path / "cifar-10-batches-py") in message and str(tmp_path / "cifar-10-python.tar.gz") in message
    assert "downloads are off" in message and "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message


def test_cifar_download_failure_is_reported(tmp_path):
    message = data_error(load_unverified, "cifar100", tmp_path)
    assert "download of https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz failed (URLError" in message
    assert not any(tmp_path.iterdir())  # the partial download was removed


@pytest.mark.parametrize("garble", ["truncated", "garbage", "not_a_batch", "bad_labels"])
def test_cifar_corrupt_batch(tmp_path, garble):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    if garble == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif garble == "garbage":
        path.write_bytes(bytes(range(256)) * 4)
    elif garble == "not_a_batch":
        write_pickle(path, {b"labels": [1, 2]})
    else:
        write_pickle(path, {b"labels": [1, 10], b"data": np.zeros((2, 3072), np.uint8)})
    message = data_error(load_unverified, "cifar10", tmp_path, download=False)
    assert str(path) in message


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_cifar_pickle_cannot_run_code(tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", {b"data": _Exploit(marker)})
    message = data_error(load_unverified, "cifar10", tmp_path, download=False)
    assert "unexpected global" in message and not marker.exists()


# --- IDX -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_round_trip(tmp_path, name):
    arrays = write_idx(tmp_path / name)
    a = load_unverified(name, tmp_path, download=False)
    assert a.train_x.shape == (5, 1, 28, 28) and a.test_x.shape == (3, 1, 28, 28)
    assert a.train_x.dtype == torch.uint8 and a.train_y.dtype == torch.int64
    assert np.array_equal(a.train_x[:, 0].numpy(), arrays[IDX_NAMES[0]])
    assert np.array_equal(a.test_x[:, 0].numpy(), arrays[IDX_NAMES[2]])
    assert a.train_y.tolist() == arrays[IDX_NAMES[1]].tolist() and a.test_y.tolist() == arrays[IDX_NAMES[3]].tolist()


def test_idx_truncated_gzip(tmp_path):
    write_idx(tmp_path / "mnist")
    path = tmp_path / "mnist" / IDX_NAMES[0]
    path.write_bytes(path.read_bytes()[:-200])
    message = data_error(load_unverified, "mnist", tmp_path, download=False)
    assert f"{path} is truncated or corrupt" in message and "delete it" in message


def test_idx_not_gzip(tmp_path):
    write_idx(tmp_path / "mnist")
    path = tmp_path / "mnist" / IDX_NAMES[3]
    path.write_bytes(b"<html>not found</html>")
    assert f"{path} is truncated or corrupt" in data_error(load_unverified, "mnist", tmp_path, download=False)


def test_idx_wrong_magic(tmp_path):
    write_idx(tmp_path / "mnist")
    path = tmp_path / "mnist" / IDX_NAMES[1]
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8), magic=0x00000803)))
    message = data_error(load_unverified, "mnist", tmp_path, download=False)
    assert str(path) in message and "0x00000803, expected 0x00000801" in message


def test_idx_size_disagrees_with_header(tmp_path):
    write_idx(tmp_path / "mnist")
    path = tmp_path / "mnist" / IDX_NAMES[2]
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8), count=4)))
    message = data_error(load_unverified, "mnist", tmp_path, download=False)
    assert str(path) in message and "header" in message


def test_idx_image_label_count_mismatch(tmp_path):
    write_idx(tmp_path / "fashion_mnist")
    labels = tmp_path / "fashion_mnist" / IDX_NAMES[1]
    labels.write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8))))
    message = data_error(load_unverified, "fashion_mnist", tmp_path, download=False)
    assert "5 images" in message and "4 labels" in message and str(labels) in message


def test_idx_label_out_of_range(tmp_path):
    write_idx(tmp_path / "mnist")
    (tmp_path / "mnist" / IDX_NAMES[3]).write_bytes(gzip.compress(idx_bytes(np.array([1, 10, 2], np.uint8))))
    assert "labels outside 0..9" in data_error(load_unverified, "mnist", tmp_path, download=False)


def test_mnist_missing_without_download(tmp_path):
    message = data_error(load_unverified, "mnist", tmp_path / "data", download=False)
    assert (
        f"{IDX_NAMES[0]} not found in {tmp_path / 'data' / 'mnist'}" in message
        and "set dataset.download=true" in message
    )


def test_fashion_missing_names_debian_package(tmp_path, no_system_dirs):
    message = data_error(load_unverified, "fashion_mnist", tmp_path, download=True)
    assert f"not found in {tmp_path / 'fashion_mnist'} or {no_system_dirs}, and download of" in message
    assert "(URLError" in message and "apt-get install dataset-fashion-mnist" in message


def test_fashion_falls_back_to_system_dir(tmp_path, monkeypatch):
    system = tmp_path / "debian"
    arrays = write_idx(system, seed=3)
    monkeypatch.setitem(
        idx.IDX_SOURCES, "fashion_mnist", replace(idx.IDX_SOURCES["fashion_mnist"], system_dirs=(system,))
    )
    a = load_unverified("fashion_mnist", tmp_path / "data", download=False)
    assert np.array_equal(a.train_x[:, 0].numpy(), arrays[IDX_NAMES[0]])


def serve(monkeypatch, files: dict[str, bytes]):
    def urlopen(url, *args, **kwargs):
        return io.BytesIO(files[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def test_idx_download_checks_md5(tmp_path, monkeypatch):
    write_idx(tmp_path / "served")
    files = {n: (tmp_path / "served" / n).read_bytes() for n in IDX_NAMES}
    serve(monkeypatch, files)
    message = data_error(load_unverified, "mnist", tmp_path / "data")
    assert "has md5" in message and "expected f68b3c2dcbeaaa9fbdd348bbdeb94873" in message
    assert not any((tmp_path / "data" / "mnist").iterdir())  # nothing unverified is left behind

    md5s = tuple(hashlib.md5(files[n]).hexdigest() for n in IDX_NAMES)
    monkeypatch.setitem(idx.IDX_SOURCES, "mnist", replace(idx.IDX_SOURCES["mnist"], md5s=md5s))
    a = load_unverified("mnist", tmp_path / "data")
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(IDX_NAMES)
    assert a.train_x.shape == (5, 1, 28, 28)


def test_unwritable_data_dir(tmp_path):
    (tmp_path / "file").write_text("")
    data_dir = tmp_path / "file" / "data"  # a path below a regular file can never be created
    message = data_error(load_unverified, "mnist", data_dir)
    assert message.startswith(f"data_dir {data_dir} is not writable") and "set data_dir=" in message


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="dataset-fashion-mnist not installed"
)
def test_real_debian_fashion_mnist(tmp_path):
    a = load_unverified("fashion_mnist", tmp_path, download=False)
    assert a.train_x.shape == (60000, 1, 28, 28) and a.test_x.shape == (10000, 1, 28, 28)
    assert a.train_y.shape == (60000,) and a.test_y.shape == (10000,)
    assert a.train_y.bincount().tolist() == [6000] * 10
    assert abs(a.train_x.float().mean().item() / 255 - DATASETS["fashion_mnist"].mean[0]) < 1e-3


# --- synthetic -----------------------------------------------------------------------------------------


def test_synthetic_shapes_and_determinism(tmp_path):
    a = load_arrays("synthetic", tmp_path / "unused", seed=1, synthetic_train=64, synthetic_test=32)
    b = load_arrays("synthetic", tmp_path / "unused", seed=1, synthetic_train=64, synthetic_test=32)
    c = load_arrays("synthetic", tmp_path / "unused", seed=2, synthetic_train=64, synthetic_test=32)
    assert a.train_x.shape == (64, 3, 32, 32) and a.test_x.shape == (32, 3, 32, 32)
    assert a.train_x.dtype == torch.uint8 and a.train_y.dtype == torch.int64
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("train_x", "train_y", "test_x", "test_y"))
    assert not torch.equal(a.train_x, c.train_x)
    assert not (tmp_path / "unused").exists()  # synthetic data never touches data_dir
    data_error(load_arrays, "synthetic", tmp_path, synthetic_train=0)


def test_synthetic_is_learnable(tmp_path):
    a = load_arrays("synthetic", tmp_path, seed=0)
    assert set(a.train_y.tolist()) == set(range(10))
    x, xt = a.train_x.float().flatten(1), a.test_x.float().flatten(1)
    means = torch.stack([x[a.train_y == k].mean(0) for k in range(10)])
    assert torch.cdist(means, means).add(torch.eye(10) * 1e9).min() > 100  # class means are far apart
    # Nearest class mean on the test set is far above the 10 % chance level.
    accuracy = (torch.cdist(xt, means).argmin(1) == a.test_y).float().mean().item()
    assert accuracy > 0.9


def test_a_split_posing_as_another_is_refused_by_checksum(tmp_path, monkeypatch):
    """With the official checksums (here: those of the files this test writes), the right files load and a test
    file put in place of the training file is refused, in one line."""
    write_idx(tmp_path / "mnist")
    raw = tuple(hashlib.md5(gzip.decompress((tmp_path / "mnist" / n).read_bytes())).hexdigest() for n in IDX_NAMES)
    monkeypatch.setitem(idx.IDX_SOURCES, "mnist", replace(idx.IDX_SOURCES["mnist"], raw_md5s=raw))
    assert load_arrays("mnist", tmp_path, download=False).train_x.shape[0] == 5
    for test, train in ((2, 0), (3, 1)):  # the t10k images and labels put in place of the training files
        shutil.copy(tmp_path / "mnist" / IDX_NAMES[test], tmp_path / "mnist" / IDX_NAMES[train])
    message = data_error(load_arrays, "mnist", tmp_path, download=False)
    assert f"is not the official {IDX_NAMES[0]}" in message and "another split" in message
    assert load_unverified("mnist", tmp_path, download=False).train_x.shape[0] == 3  # what verify=false accepts


def test_cifar_batches_are_checked_against_the_published_md5s(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    published = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setitem(cifar.CIFAR_SOURCES, "cifar10", replace(cifar.CIFAR_SOURCES["cifar10"], batch_md5s=published))
    load_arrays("cifar10", tmp_path, download=False)
    shutil.copy(folder / "test_batch", folder / "data_batch_3")
    assert "is not the official data_batch_3" in data_error(load_arrays, "cifar10", tmp_path, download=False)


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed (make data installs it)",
)
def test_the_real_fashion_mnist_matches_its_official_checksums(tmp_path):
    a = load_arrays("fashion_mnist", tmp_path, download=False)  # Debian's recompressed copy, contents verified
    assert a.train_x.shape == (60000, 1, 28, 28) and a.test_x.shape == (10000, 1, 28, 28)

"""Getting dataset files onto the disk safely: downloads checked against their published md5, archives
extracted through a temporary folder, and every failure as a one-line `DataError`. Temporary files live beside
their target, so the final rename is atomic whatever the system's temp folder is.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from reslab.errors import DataError


def cause(exc: BaseException) -> str:
    """`Type: message` on one line, for quoting an underlying error inside a DataError."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def temp_in(directory: Path, data_dir: Path, *, folder: bool = False) -> Path:
    """A fresh temp file (or folder) in `directory`, so the final rename is atomic (same filesystem)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if folder:
            return Path(tempfile.mkdtemp(dir=directory, prefix=".extract-"))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".part-")
        os.close(fd)
        return Path(tmp)
    except OSError as e:
        raise DataError(f"data_dir {data_dir} is not writable ({cause(e)}); set data_dir=<a writable path>") from None


def obtain(
    name: str, url: str, dest: Path, md5: str, *, data_dir: Path, download: bool, missing: str, hint: str
) -> None:
    """Download `url` to `dest`; the file only appears there once its md5 has been checked."""
    if not download:
        raise DataError(f"{missing} (downloads are off); {hint}, or set dataset.download=true")
    tmp = temp_in(dest.parent, data_dir)
    try:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except OSError as e:  # URLError, HTTPError, timeouts and a full disk are all OSErrors
            raise DataError(f"{missing}, and download of {url} failed ({cause(e)}); {hint}") from None
        got = file_md5(tmp)
        if got != md5:
            raise DataError(f"{name}: download of {url} has md5 {got}, expected {md5}; rerun later, or {hint}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def extract(name: str, archive: Path, folder: str, root: Path) -> None:
    """Extract `folder` from `archive` via a temp dir, so an interrupted run leaves no half folder behind."""
    tmp = temp_in(root, root, folder=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if Path(m.name).parts[:1] == (folder,)]
            if not members:
                raise DataError(f"{name}: {archive} holds no {folder}/; delete it and rerun to download again")
            tar.extractall(tmp, members=members, filter="data")
        os.replace(tmp / folder, root / folder)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{name}: cannot extract {archive} ({cause(e)}); delete it and rerun") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

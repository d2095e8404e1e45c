"""Atomic file writes and writable-directory checks, shared by the job, the results and the command line.

Every file a job or the report writes goes through `write_atomic`: a temporary file beside the target (the same
filesystem, whatever ``$TMPDIR`` is), flushed and fsynced, then renamed over the target, and the directory
fsynced. A kill or a full disk at any point leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

LOCK_FILE = ".lock"  # in a job directory, held while the job trains (reslab.jobdir.JobLock)
MLFLOW_RUN_FILE = "mlflow_run.json"  # in a job directory: the MLflow run a resumed job continues (logger=mlflow)
REPORT_LOCK_FILE = ".report.lock"  # in a sweep directory, held while its report is written


def ensure_writable_dir(path: Path) -> None:
    """Create ``path`` if needed and prove it takes a file; raises OSError otherwise.

    Tried for real: permission bits say little for root or on read-only mounts."""
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".reslab-write-test-{os.getpid()}"
    probe.write_text("")
    probe.unlink()


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, make it durable, then rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600; the file gets the mode open() would give it
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a crash right after it could otherwise forget it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems do not sync directories; the rename is still atomic
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def is_locked(directory: Path) -> bool:
    """Whether a process holds ``<directory>/.lock`` now, i.e. a job is training there (on this machine)."""
    path = Path(directory) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return False


@contextlib.contextmanager
def exclusive(path: Path):
    """Wait for, then hold, an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block: one
    writer at a time among processes, e.g. the jobs of a joblib sweep that each rewrite the sweep's report."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

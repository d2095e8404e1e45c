"""What a job directory holds, and whether this run may use it.

One identity (`RunRecord.identity`: every setting that changes what is computed) decides whether a finished
record is reused, whether a checkpoint is resumed, and what ``metrics.json`` says. A directory that holds a run
of another experiment is refused with one line naming the differing keys, and nothing is written into it. A lock
per job directory keeps a second process from training the same job into the same files at the same time; the
report uses the same lock to tell a job that is running from one that died without a word.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
from pathlib import Path

from omegaconf import DictConfig

from reslab.config import default_values
from reslab.errors import UserError
from reslab.files import LOCK_FILE, ensure_writable_dir, write_json_atomic, write_text_atomic
from reslab.record import RunRecord, identity_differences
from reslab.record import read_metrics as read_record
from reslab.training.checkpoint_io import load_checkpoint

# Files a job writes; retrain=true removes them before training again.
JOB_FILES = (
    "events.out.tfevents.*",
    "metrics.json",
    "curves.csv",
    "grad_norms.npz",
    "responses.npz",
    "signal_steps.npz",
    "error.log",
    "hparams.yaml",
    "mlflow_run.json",  # a retrained job is a new MLflow run
)
JOB_FOLDERS = ("checkpoints", "csv")


class ForeignRunError(UserError):
    """The job directory belongs to another experiment or another process: refuse without writing into it."""


def check_output_dir(out: Path) -> None:
    try:
        ensure_writable_dir(out)
    except OSError as e:
        raise UserError(
            f"output directory {out} is not writable ({e.strerror}); "
            f"point hydra.run.dir / hydra.sweep.dir at a writable path"
        ) from None


def check_same_experiment(cfg: DictConfig, out: Path, identity: dict) -> None:
    """Refuse a directory whose ``metrics.json`` is of another experiment (whatever its status)."""
    record = read_record(out)
    if record is None or ("identity" in record and record["identity"] is None):  # see record_failure
        return
    saved = record.get("identity") or {k: record[k] for k in identity if k in record}  # older records: top level
    if differ := identity_differences(saved, identity, default_values(cfg)):
        raise ForeignRunError(
            f"job directory {out} holds a {record.get('status', 'earlier')} run of a different experiment: "
            f"{', '.join(differ)}; use another output directory (in one sweep folder: sweep that setting, so the "
            f"job names differ), or retrain=true to replace it"
        )


def finished_record(out: Path) -> dict | None:
    """The metrics of a job that already ended in ``out`` (finished or diverged), if any."""
    record = read_record(out)
    return record if record is not None and record.get("status") in ("finished", "diverged") else None


def clear_job_dir(out: Path) -> None:
    """Remove an earlier run's outputs (retrain=true), so nothing of it can be resumed or reported."""
    for folder in JOB_FOLDERS:
        shutil.rmtree(out / folder, ignore_errors=True)
    for pattern in JOB_FILES:
        for path in out.glob(pattern):
            path.unlink()


def checkpoint_to_resume(cfg: DictConfig, out: Path, identity: dict) -> Path | None:
    """``resume=<path>``, else the job directory's ``checkpoints/last.ckpt`` if there is one; refused in one
    line if it is unreadable, unsafe to load, or from a different experiment."""
    if cfg.resume:
        path = Path(cfg.resume)
        if not path.is_file():
            raise UserError(
                f"resume={cfg.resume}: no such checkpoint file; pass a .ckpt path, e.g. <job dir>/checkpoints/last.ckpt"
            )
    else:
        path = out / "checkpoints" / "last.ckpt"
        if not path.exists():
            return None
    saved = load_checkpoint(path).get("reslab_identity")
    if not isinstance(saved, dict):
        raise UserError(f"checkpoint {path} is not a reslab checkpoint; delete it or pass another with resume=")
    if differ := identity_differences(saved, identity, default_values(cfg)):
        raise UserError(
            f"checkpoint {path} is from a different experiment: {', '.join(differ)}; "
            f"use another output directory or resume= path"
        )
    return path


def record_failure(cfg: DictConfig, error_line: str, tb: str) -> Path | None:
    """Write ``metrics.json`` (status failed) and ``error.log`` into the job directory, if it is writable, unless
    it holds a run that ended (a job refused before its checks, e.g. for its size, must not overwrite it). The
    directory is made if the job stopped before Hydra made it (found by tools/chaos.py: a SIGINT to a joblib worker
    then left the job with no record, and no status said what had happened to it)."""
    try:
        out = Path(cfg.output_dir)
        if finished_record(out) is not None:
            return None
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "error.log", tb)
        record = {
            **RunRecord.from_config(cfg).facts(),
            "status": "failed",
            "error": error_line,
            "traceback": str(out / "error.log"),
        }
        if (earlier := read_record(out)) is not None:  # keep what the run had measured before it failed
            record = {**earlier, **record}
        # Written from outside a job that never recorded itself (a launcher's record of a job that died or could
        # not start): no identity of its own, and nothing of it to protect (checkpoints carry their own).
        record.setdefault("identity", None)
        write_json_atomic(out / "metrics.json", record)
        return out / "error.log"
    except Exception:  # the failure may be the unwritable directory itself
        return None


def record_interrupted(cfg: DictConfig, why: str) -> None:
    """Record status ``interrupted`` for a job a signal stopped outside training, where its record does not say so
    already (a job stopped while training records it itself, with its step) and no process trains it."""
    from reslab.files import is_locked

    out = Path(cfg.output_dir)
    record = read_record(out)
    if (record is not None and record.get("status") != "running") or is_locked(out) or not out.is_dir():
        return
    # A job stopped before it recorded itself has no identity of its own: null, as record_failure's (found by
    # tools/chaos.py: without it the rerun refused the job as another experiment, and the sweep never completed).
    written = record or {**RunRecord.from_config(cfg).facts(), "identity": None}
    write_json_atomic(out / "metrics.json", {**written, "status": "interrupted", "error": why})


class JobLock:
    """An exclusive lock on ``<job dir>/.lock`` while a job trains; the holder's pid and host are in the file.

    ``flock`` is released by the kernel when the process dies, however it dies, so a lock nobody holds means
    that no job is training there (on this machine; network filesystems may not honour it)."""

    def __init__(self, out: Path):
        self.path = Path(out) / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> JobLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ForeignRunError(
                f"job directory {self.path.parent} is being trained by {holder}; wait for it to end, or use another "
                f"output directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

"""The ``logger`` config group (conf/logger/): where a run's scalars go besides ``curves.csv``, several at once.

    logger=tensorboard            event files in the job directory (the default; tensorboard --logdir SWEEP_DIR)
    logger=csv                    every scalar in <job>/csv/metrics.csv (Lightning's CSVLogger)
    logger=mlflow                 one MLflow run per job in a tracking store (pip install 'reslab[mlflow]')
    logger=[tensorboard,mlflow]   several; logger=[] none (curves.csv is still written)

Each is a Lightning logger that `reslab.build` gives the job directory, the run's name and its identity (its
HParams); each one survives what a job survives: a resumed job continues its CSV file and its MLflow run.
`CurveLog`, which writes ``curves.csv``, is not a choice: every job has it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import time
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from reslab.curves import CURVE_TAGS, CURVES_FILE, curves_text, curves_to_rows, read_curve_rows, read_event_curves
from reslab.errors import UserError
from reslab.files import MLFLOW_RUN_FILE, exclusive, write_json_atomic, write_text_atomic
from reslab.training.ranks import is_rank_zero


def _plain_scalars(metrics: dict) -> dict:
    """What a logger other than TensorBoard records: no ``views/`` copies (they lay out TensorBoard's custom scalars,
    reslab.tensorboard_views) and no ``epoch`` (the step is these runs' only clock)."""
    return {k: v for k, v in metrics.items() if not k.startswith("views/") and k != "epoch"}


class CurveLog(Logger):
    """Writes ``curves.csv``; a logger every job has, besides those the ``logger`` group chooses.

    Written here rather than with Lightning's CSVLogger, which appends a row per call: a resumed run would repeat
    the steps it redoes, and the file would hold every scalar (per-layer norms included). This keeps one row per
    step, the last value logged at a step winning (as TensorBoard's reader does), and rewrites the file atomically:
    at every checkpoint (what a resumed job needs), at the end, and at most every ``flush_seconds`` between (to
    watch it). A rewrite per so many calls grows with the file: every 20 calls cost 24 s over 12800 calls (a 64k-step
    run), this 0.14 s. A resumed job continues its file; one resumed from a run written
    before ``curves.csv`` starts from the curves in its event files.
    """

    def __init__(self, job_dir: str | Path, flush_seconds: float = 30.0):
        super().__init__()
        self.path = Path(job_dir) / CURVES_FILE
        self.flush_seconds = flush_seconds
        self.rows = read_curve_rows(self.path) or curves_to_rows(read_event_curves(job_dir))
        self._unsaved = 0
        self._saved_at = time.monotonic()

    @property
    def name(self) -> str:
        return "curves"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """The run's identity is in metrics.json; this file holds curves only."""

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        kept = {k: float(v) for k, v in metrics.items() if k in CURVE_TAGS}
        if not kept or step is None:
            return
        self.rows.setdefault(int(step), {}).update(kept)
        self._unsaved += 1
        if time.monotonic() - self._saved_at >= self.flush_seconds:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        if self._unsaved:
            write_text_atomic(self.path, curves_text(self.rows))
            self._unsaved, self._saved_at = 0, time.monotonic()

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback) -> None:
        self.save()  # a job killed after this checkpoint resumes from it, with every row before it on disk

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()


class StepTensorBoard(TensorBoardLogger):
    """TensorBoard event files in the job directory, with the training step as the only clock: Lightning's ``epoch``
    scalar is dropped (an epoch is not a unit of these runs, and TensorBoard's Scalars tab would open on it)."""

    def __init__(self, job_dir: str, run_name: str = "", hparams: dict | None = None):
        super().__init__(save_dir=job_dir, name="", version="", default_hp_metric=False)

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        metrics = {k: v for k, v in metrics.items() if k != "epoch"}
        if metrics:
            super().log_metrics(metrics, step)


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing metrics.csv is continued, not deleted: a resumed job appends
    (the steps it redoes come again, later in the file: keep the last row of a step, as TensorBoard does)."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])


class AllScalarsCSV(CSVLogger):
    """Every scalar the run logs through Lightning (losses, errors, lr, the final errors) in ``<job>/csv/metrics.csv``,
    one row per logging call, as pandas reads it; the run's HParams in ``<job>/csv/hparams.yaml``. The per-layer
    instruments are in the job's grad_norms.npz and responses.npz whatever the logger."""

    def __init__(self, job_dir: str, run_name: str = "", hparams: dict | None = None, flush_logs_every_n_steps=100):
        super().__init__(save_dir=job_dir, name="csv", version="", flush_logs_every_n_steps=flush_logs_every_n_steps)
        if hparams:
            self.log_hyperparams(hparams)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        if metrics := _plain_scalars(metrics):
            super().log_metrics(metrics, step)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback) -> None:
        self.save()  # a job killed after this checkpoint resumes from it, with every row before it on disk


class MLflowRun(MLFlowLogger):
    """One MLflow run per job, named as the job (plain-56_seed0), its identity as the run's parameters, in the
    experiment ``experiment_name`` of the store at ``tracking_uri`` (a SQLite file by default, or a tracking
    server's URL). Its id is kept in the job directory: a resumed job continues the same MLflow run.

    The status is reslab's, not Lightning's: Lightning ends a run after fit, before the test, and after a stop
    that reslab resumes; here the run stays RUNNING until the job ends it (`end`)."""

    def __init__(
        self,
        job_dir: str,
        run_name: str = "",
        hparams: dict | None = None,
        tracking_uri: str = "",
        experiment_name: str = "reslab",
    ):
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise UserError(
                "logger=mlflow needs MLflow's client: pip install 'reslab[mlflow]' (or choose logger=tensorboard)"
            ) from None
        if not tracking_uri:
            raise UserError("logger=mlflow needs logger.mlflow.tracking_uri (sqlite:///PATH.db, a server's URL, ...)")
        self.record_path = Path(job_dir) / MLFLOW_RUN_FILE
        store = {"tracking_uri": tracking_uri, "experiment_name": experiment_name}
        earlier = _read_json(self.record_path)
        run_id = earlier.get("run_id") if {k: earlier.get(k) for k in store} == store else None
        # One process at a time opens a SQLite store: the jobs of a sweep start together, and MLflow's client creates
        # and migrates the store's tables when it opens it (two at once fail).
        with _store_lock(tracking_uri):
            try:
                super().__init__(experiment_name, run_name=run_name or None, tracking_uri=tracking_uri, run_id=run_id)
                if not is_rank_zero():  # the other processes of a run on several devices log nothing
                    return
                if run_id is not None and self._run_exists(run_id):
                    self.experiment.update_run(run_id, status="RUNNING")
                else:
                    self._run_id = None
                    self.tags = {"reslab.job_dir": str(Path(job_dir).resolve())}
                    _ = self.experiment  # the experiment and the run, made now
                    self.log_hyperparams(hparams or {})
            except Exception as e:
                raise UserError(f"logger=mlflow: cannot use the tracking store {tracking_uri}: {e}") from None
        write_json_atomic(self.record_path, {**store, "run_id": self.run_id})

    def _run_exists(self, run_id: str) -> bool:
        try:
            return self._mlflow_client.get_run(run_id).info.lifecycle_stage != "deleted"
        except Exception:  # deleted from the store, or a store rebuilt: start a new run
            return False

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        if metrics := _plain_scalars(metrics):
            super().log_metrics(metrics, step)

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        if status == "failed":  # an exception inside Lightning: the job fails, whatever follows
            self.end("failed")

    @rank_zero_only
    def end(self, status: str) -> None:
        """End the MLflow run as the job ended: finished, diverged, interrupted (resumable) or failed."""
        if not self._initialized:
            return
        terminal = {"finished": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED")
        self.experiment.set_tag(self.run_id, "reslab.status", status)
        self.experiment.set_terminated(self.run_id, terminal)


def end_loggers(loggers, status: str) -> None:
    """Tell every logger how the job ended (``metrics.json``'s status); Lightning's own finalize says less."""
    for logger in loggers:
        if isinstance(logger, MLflowRun):
            logger.end(status)
        else:
            logger.finalize("success" if status == "finished" else "failed")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _store_lock(tracking_uri: str):
    """For a SQLite store, an exclusive lock on a file beside the database; other stores handle their own
    concurrency."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite":
        yield
        return
    database = Path(parsed.path[1:])  # sqlite:///relative.db, sqlite:////absolute.db (SQLAlchemy's spelling)
    if not database.is_absolute():
        database = Path.cwd() / database
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        where = f"logger=mlflow: cannot create {database.parent} ({e.strerror})"
        raise UserError(f"{where}; choose another logger.mlflow.tracking_uri") from None
    with exclusive(database.with_name(database.name + ".lock")):
        yield

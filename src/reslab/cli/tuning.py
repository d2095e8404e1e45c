"""Searches with hydra-optuna-sweeper (``reslab -m hparams_search=lr``, the ``reslab[tune]`` extra).

A job that could not run returns NaN as its objective (`reslab.cli.hydra_app.objective`). The pinned sweeper
(hydra-optuna-sweeper 1.3.0 on optuna 2.10) cannot record that: optuna's ``Study.tell`` refuses the NaN, the
sweeper then tells the trial FAIL with the same NaN, optuna refuses that too, and the whole search ends with two
tracebacks at the first failed job. `FailedJobIsFailedTrial`, a Hydra callback that conf/hparams_search/*.yaml
installs, marks such a job's return as failed before the sweeper reads it: the sweeper records a failed trial,
logs one line, and (with ``max_failure_rate: 1.0``) goes on, as every reslab sweep does. The job's own record
says why it failed, and the command exits 1 at the end (`reslab.cli.sweep_exit_code`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class JobFailed(RuntimeError):
    """The failed trial's reason, as the sweeper logs it."""


class FailedJobIsFailedTrial(Callback):
    """Turns a job's NaN objective into a failed job return, which a sweeper records as a failed trial."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.COMPLETED:
            return
        value = job_return.return_value
        if isinstance(value, float) and math.isnan(value):
            job = Path(job_return.hydra_cfg.hydra.runtime.output_dir) if job_return.hydra_cfg else None
            where = f"; its metrics.json and error.log in {job} say why" if job else ""
            job_return.status = JobStatus.FAILED
            job_return.return_value = JobFailed(f"job {job.name if job else ''} could not run{where}")

"""The Hydra side of the command: the task run for every job, and the sweep report around the jobs.

`JobRunner.run` is what Hydra's launcher calls with each job's composed config, in whatever process the
launcher gives it; it depends only on that config. `SweepReport` is a Hydra callback that keeps the sweep's
report current as jobs end and writes it in full when the multirun ends.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from reslab.console import quiet_console
from reslab.errors import UserError

log = logging.getLogger("reslab")


def remove_if_unused(out: Path) -> None:
    """A refused single run leaves no directory behind: Hydra made it before reslab's checks, and nothing else
    is in it yet (only Hydra's own files and the log)."""
    if out.is_dir() and {p.name for p in out.iterdir()} <= {".hydra", "reslab.log", ".lock"}:
        shutil.rmtree(out, ignore_errors=True)


def record_launch(cfg: DictConfig, hydra: DictConfig) -> None:
    """Write into the job's config what the launcher decided and the job needs: its number, how many jobs run at
    once on this machine, where reslab was launched, the config groups' options, and a sweeper's searched keys.
    Nothing below the command line reads Hydra's state: the job depends only on its config."""
    n_jobs = hydra.launcher.get("n_jobs")
    if not isinstance(n_jobs, int) or n_jobs == 0:
        concurrent = 1
    else:  # joblib's n_jobs; -1 is one per core
        concurrent = n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    params = hydra.sweeper.get("params") if "sweeper" in hydra else None
    with open_dict(cfg):
        cfg.launch.job_number = int(hydra.job.get("num", 0) or 0)
        cfg.launch.concurrent_jobs = concurrent
        cfg.launch.cwd = hydra.runtime.cwd
        cfg.launch.choices = OmegaConf.to_container(hydra.runtime.choices)
        cfg.sweep_keys = [*cfg.sweep_keys, *(k for k in (params or {}) if k not in cfg.sweep_keys)]


class JobRunner:
    """Runs each job; counts the failures of a sweep run in this process."""

    def __init__(self):
        self.failed: list[str] = []

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def run(self, cfg: DictConfig) -> float:
        """Train the job; return its objective for a tuning sweeper (`objective`)."""
        from reslab.job import train  # imported here so `reslab --help` stays fast
        from reslab.jobdir import ForeignRunError, record_failure, record_interrupted
        from reslab.signals import Interrupted, mark_stopping, stop_outside_training, sweep_stopping

        quiet_console()
        multirun = HydraConfig.get().mode == RunMode.MULTIRUN
        record_launch(cfg, HydraConfig.get())
        out = Path(cfg.output_dir)
        if multirun and sweep_stopping(out.parent) is not None:  # a stop signal arrived: start nothing new
            remove_if_unused(out)
            return float("nan")
        try:
            if multirun and not in_launching_process():
                with stop_outside_training(out):
                    return objective(train(cfg))
            return objective(train(cfg))
        except Interrupted as stopped:  # checkpointed (or stopped before training began: nothing to checkpoint)
            if not multirun:
                raise
            record_interrupted(cfg, f"stopped by {stopped.signal_name} outside training (while setting up or ending)")
            # A signal to a job stops that job; only the launching command's signal stops the sweep (it marks the
            # sweep folder). Under the basic launcher the job trains in that process and took over its signals.
            if in_launching_process():
                mark_stopping(out.parent, stopped.signum)
            elif stopped.requeue is not None and sweep_stopping(out.parent) is None:
                hand_over(stopped)  # a launcher that requeues (submitit) takes over here
            return float("nan")
        except UserError as e:
            line = str(e).splitlines()[0] if str(e) else type(e).__name__
            if not multirun:
                print(f"reslab: error: {line}", file=sys.stderr)
                remove_if_unused(Path(cfg.output_dir))
                raise SystemExit(2) from None
            # A directory of another experiment or process is left as it is.
            where = None if isinstance(e, ForeignRunError) else record_failure(cfg, line, traceback.format_exc())
        except Exception as e:  # a bug or a crash: keep the sweep going, keep the traceback
            if not multirun:
                raise
            line = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            where = record_failure(cfg, line, traceback.format_exc())
        job = Path(cfg.output_dir).name
        self.failed.append(job)
        tell(f"reslab: job {job} failed: {line}" + (f" (traceback: {where})" if where else ""))
        return float("nan")


def tell(line: str) -> None:
    """A line to the job's stderr, which for a cluster job is a file: on a full disk the line is lost, and the job
    still returns (the error escaped the job and ended the sweep; found by tools/chaos.py under submitit_local)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def in_launching_process() -> bool:
    """Whether this job runs in the process that launched the sweep: Hydra's basic launcher runs jobs in turn in
    that process (every other launcher in workers or on a cluster), as the job's own Hydra config says."""
    return str(HydraConfig.get().launcher.get("_target_", "")).endswith(".BasicLauncher")


def hand_over(stopped) -> None:
    """Let the launcher requeue a checkpointed job (submitit requeues it and exits this process), unless the
    scheduler says the job was cancelled (a user's ``scancel``: the job stays interrupted, and a rerun of the
    sweep resumes it), or SLURM is requeueing it already (the job then ends without a result, as submitit's own
    requeue does, so that the launcher keeps waiting for the requeued run). A requeue the scheduler refuses
    leaves the job interrupted, not failed."""
    from reslab.cli.slurm import this_job_cancelled, this_job_requeued

    name = stopped.job_dir.name
    if this_job_cancelled():
        log.warning("%s: checkpointed; cancelled by the scheduler, so not requeued (rerun the sweep to resume)", name)
        return
    if this_job_requeued():
        log.warning("%s: checkpointed; SLURM is requeueing the job", name)
        raise SystemExit(128 + stopped.signum)
    log.warning("%s: checkpointed; handing over to the launcher to requeue", name)
    try:
        stopped.hand_over()
    except Exception as e:  # e.g. scontrol refusing the requeue; SystemExit (submitit's exit after it) passes
        log.warning("%s: the requeue failed (%s); rerun the sweep to resume", name, str(e).splitlines()[0])


def objective(result: dict) -> float:
    """What a tuning sweeper minimises: the final validation error (never the test error). A diverged run counts
    as error 1 (as bad as it gets, so a search learns to avoid its region); a job that could not run gives NaN,
    which Optuna records as a failed trial."""
    if result.get("status") == "diverged":
        return 1.0
    value = result.get("val_error")
    return float(value) if value is not None else float("nan")


class SweepReport(Callback):
    """The report of a multirun: tables after every job, tables and figures when the multirun ends.

    Hydra skips ``on_multirun_end`` when a job raises; reslab's jobs record their failures instead of raising,
    and the tables are rewritten at every job end, so a sweep that dies midway still leaves a current summary.
    """

    def __init__(self, figures: bool = True):
        self.figures = figures
        self.sweep_dir: Path | None = None

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        hydra_cfg = getattr(job_return, "hydra_cfg", None)
        if hydra_cfg is None or str(hydra_cfg.hydra.mode) != "RunMode.MULTIRUN":
            return
        # The job's resolved directory, not hydra.sweep.dir: reading that again re-resolves ${now:...} to the
        # current time, a directory that does not exist.
        self.sweep_dir = Path(hydra_cfg.hydra.runtime.output_dir).parent
        self.write(self.sweep_dir, figures=False, quiet=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.write(self.sweep_dir or Path(config.hydra.sweep.dir), figures=self.figures, quiet=False)

    @staticmethod
    def write(sweep_dir: Path, figures: bool, quiet: bool) -> None:
        from reslab.results.report import report

        quiet_console()  # the report may run in a process where no job did (launchers with workers)
        try:
            report(sweep_dir, figures=figures, quiet=quiet)
        except Exception as e:  # a report problem must never take the sweep's results down with it
            log.error(
                "report for %s failed: %s: %s (rerun: reslab report %s)", sweep_dir, type(e).__name__, e, sweep_dir
            )

"""reslab's basic and joblib launchers: Hydra's, with a sweep that no single job takes down.

Found by the chaos harness (tools/chaos.py): Hydra's basic and joblib launchers end the whole sweep with a traceback
when one job raises outside reslab's own code (Hydra writing the job's ``.hydra/`` files on a full disk), and the
joblib launcher does so too when a worker process dies (killed, out of memory, or an idle worker taking the user's
SIGTERM), because loky then fails every job of its pool. These run the jobs exactly as Hydra's do (the same
``run_job``, the same loky pool and settings) and:

- a job whose setup raises is recorded as failed in its own directory (where that can be written), the sweep goes
  on, and the command exits 1 (its record, or the lack of one, says so: `reslab.cli.sweep_exit_code`);
- under joblib, when a worker dies, loky kills the pool's other workers too (SIGKILL: its design, not reslab's). The
  jobs that returned keep their results; a job that had started in this launch and has none is recorded as failed
  ("its worker process died") unless another process trains it, and resumes from its checkpoint on the rerun; the
  jobs not started yet run in a fresh pool. A job is never started twice in one launch.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from omegaconf import DictConfig, open_dict

log = logging.getLogger("reslab")


def sweep_config(launcher, overrides: Sequence[str], idx: int) -> DictConfig:
    """The job's config as Hydra's launchers compose it for ``run_job``."""
    cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(cfg):
        cfg.hydra.job.id = idx
        cfg.hydra.job.num = idx
    return cfg


def job_config(launcher, overrides: Sequence[str], idx: int) -> DictConfig:
    """The same, with the directory the job names itself (from that config), for recording it from outside."""
    cfg = sweep_config(launcher, overrides, idx)
    with open_dict(cfg):
        cfg.output_dir = str(Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir))
    return cfg


def lost(overrides: Sequence[str]) -> JobReturn:
    """A completed return of NaN for a job without one: Hydra re-raises a failed job's error, which would end the
    sweep (a tuning sweeper reads NaN as a failed trial)."""
    return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=float("nan"))


def record(cfg: DictConfig, line: str, tb: str) -> None:
    """Record a job that ended without a result, unless a process trains it now (a second launch of the sweep)."""
    from reslab.files import is_locked
    from reslab.jobdir import record_failure

    out = Path(cfg.output_dir)
    if is_locked(out):
        return
    record_failure(cfg, line, tb)
    print(f"reslab: job {out.name} failed: {line}", file=sys.stderr)


def contained(ret: JobReturn, cfg: Callable[[], DictConfig], overrides: Sequence[str]) -> JobReturn:
    """A job whose task raised past reslab's own handling comes back from Hydra FAILED, and every sweeper re-raises
    that, ending the sweep (found by tools/chaos.py: a submitit job could not write its error message on a full
    disk): it is recorded as failed instead, and returns NaN like a job that could not run."""
    if ret.status != JobStatus.FAILED:
        return ret
    error = ret._return_value
    record(
        cfg(), f"{type(error).__name__}: {error} (raised out of the job)", "".join(traceback.format_exception(error))
    )
    return lost(overrides)


def run_one(launcher, overrides: Sequence[str], idx: int) -> JobReturn:
    """Hydra's ``run_job`` for one job, in this process; its setup's error is the job's, not the sweep's."""
    try:
        ret = run_job(hydra_context=launcher.hydra_context, task_function=launcher.task_function,
                      config=sweep_config(launcher, overrides, idx), job_dir_key="hydra.sweep.dir",
                      job_subdir_key="hydra.sweep.subdir")  # fmt: skip
        return contained(ret, lambda: job_config(launcher, overrides, idx), overrides)
    except Exception as e:  # not reslab's task (it records its own failures): Hydra's setup of the job
        line = f"{type(e).__name__}: {e} (in Hydra's setup, before the job started)"
        record(job_config(launcher, overrides, idx), line, traceback.format_exc())
        return lost(overrides)


def _in_worker(i: int, overrides, idx: int, launcher, singleton_state) -> tuple[int, JobReturn]:
    """What a joblib worker runs: Hydra's ``execute_job`` with the job's error kept to the job."""
    setup_globals()
    Singleton.set_state(singleton_state)
    try:
        return i, run_one(launcher, overrides, idx)
    except KeyboardInterrupt:  # SIGINT to this worker outside training (where the job checkpoints on it instead)
        line = "stopped by SIGINT outside its training; rerun the sweep to run it"
        record(job_config(launcher, overrides, idx), line, "")
        return i, lost(overrides)  # loky would hand the KeyboardInterrupt on to the launching command


class WatchedBasic:
    """Mixed in before Hydra's BasicLauncher: the jobs in turn in this process."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally")
        runs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            runs.append(run_one(self, overrides, idx))
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return runs


class WatchedJoblib:
    """Mixed in before Hydra's JoblibLauncher: the jobs on a loky pool, a dead worker costing only its own jobs."""

    joblib: dict

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
        from joblib import Parallel, delayed
        from joblib.externals.loky.process_executor import TerminatedWorkerError

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        settings = dict(self.joblib, backend="loky")  # Hydra's launcher hard-codes loky too
        process_joblib_cfg(settings)
        log.info(f"Joblib.Parallel({settings}) is launching {len(job_overrides)} jobs")
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        began = time.time()
        results: dict[int, JobReturn] = {}
        pending = list(range(len(job_overrides)))
        while pending:
            state = Singleton.get_state()
            calls = (delayed(_in_worker)(i, job_overrides[i], initial_job_idx + i, self, state) for i in pending)
            try:
                for i, ret in Parallel(**settings, return_as="generator_unordered")(calls):
                    results[i] = ret
            except TerminatedWorkerError as e:
                log.warning("a worker process died (%s); the jobs it took down are recorded, the rest go on",
                            str(e).splitlines()[-1])  # fmt: skip
            left = [i for i in pending if i not in results]
            started = [i for i in left if self._started(job_overrides[i], initial_job_idx + i, began)]
            for i in started:
                cfg = job_config(self, job_overrides[i], initial_job_idx + i)
                record(cfg, "its worker process died (killed, out of memory?) or was killed with a dying one; "
                       "rerun the sweep to resume it", "")  # fmt: skip
                results[i] = lost(job_overrides[i])
            if left and not started and len(left) == len(pending):
                break  # the pool failed before any job started: do not loop
            pending = [i for i in left if i not in results]
        return [results.get(i) or lost(job_overrides[i]) for i in range(len(job_overrides))]

    def _started(self, overrides, idx: int, began: float) -> bool:
        """Whether the job began in this launch: Hydra writes its ``.hydra/config.yaml`` first thing."""
        path = Path(job_config(self, overrides, idx).output_dir) / ".hydra" / "config.yaml"
        try:
            return path.stat().st_mtime >= began - 1
        except OSError:
            return False

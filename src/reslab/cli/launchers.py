"""reslab's submitit launchers (SLURM and local): submitit's Hydra launchers with a sweep that outlives its jobs.

Hydra's submitit launcher submits the jobs, then waits for each one's result in turn: a job that ends without one
(killed, out of memory, its node lost) raises in the launching command, which dies with a traceback while the other
jobs go on unwatched; an sbatch refusal is a 40-line traceback; a job that can never start is waited for forever,
and Ctrl+C does not end the wait. These launchers submit exactly as Hydra's do (the same executor, parameters and
pickled job, so requeueing is unchanged), and then watch every job until all have ended:

- a job that ended without a result is recorded as failed in its own directory with the scheduler's word for it;
  the sweep goes on, the report lists it, the command exits 1, and rerunning the command completes it;
- a job pending for a reason that can never clear is cancelled and recorded with SLURM's reason;
- the user's SIGTERM or SIGINT to the command (`reslab.signals.SweepStop`) stops the sweep: running jobs
  get SIGTERM and checkpoint, pending ones are cancelled, and the command waits for them before it reports;
- a submission the cluster refuses is one line saying which setting to change, and exit status 2.

The launcher classes live in ``hydra_plugins.reslab_launchers`` (Hydra instantiates launchers from that package
only); ``reslab.cli`` puts them in place of ``hydra/launcher=submitit_slurm`` and ``submitit_local``'s own classes.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import DictConfig, OmegaConf

from reslab.cli import slurm

log = logging.getLogger("reslab")

POLL_S = 2.0  # results are files: cheap to look for
# squeue is asked this often (seconds), once for the whole sweep (a controller's load grows with its callers):
# a job it no longer lists, with no result, for GONE_CHECKS answers in a row has ended; a pending job whose
# reason can never clear is cancelled.
QUEUE_EVERY_S = 5.0
GONE_CHECKS = 2
# After the user's stop: how long running jobs get to checkpoint and end before they are cancelled outright.
STOP_GRACE_S = 120.0


class WatchedLaunch:
    """The launch shared by both launchers; mixed in before Hydra's class, whose job-side ``__call__`` and
    ``checkpoint`` (submitit's requeue) are used as they are."""

    _EXECUTOR: str
    params: dict
    config: Any
    hydra_context: Any

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        executor = self._executor(submitit)
        sweep = Path(str(self.config.hydra.sweep.dir))
        sweep.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep}")
        args = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            args.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        try:
            jobs = executor.map_array(self, *zip(*args))
        except submitit.core.utils.FailedJobError as e:
            print(f"reslab: error: {slurm.submission_error(str(e))}", file=sys.stderr)
            raise SystemExit(2) from None
        configs = [self._job_config(overrides) for overrides in job_overrides]
        watch = Watch(jobs, configs, sweep, on_slurm=self._EXECUTOR == "slurm")
        watch.run()
        return [watch.job_return(i, list(o)) for i, o in enumerate(job_overrides)]

    def _executor(self, submitit):
        """submitit's executor with the preset's parameters, as Hydra's launcher makes it."""
        params = dict(self.params)
        init = {"folder": params.pop("submitit_folder")}
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items()})
        return executor

    def _job_config(self, overrides: Sequence[str]) -> DictConfig:
        """The job's composed config, with the directory the job will name itself (from that config)."""
        from reslab.cli.launchers_local import job_config

        return job_config(self, overrides, 0)


class Watch:
    """Waits for every job of a submission; records what ended without a result; carries out the user's stop."""

    def __init__(self, jobs: list, configs: list[DictConfig], sweep: Path, on_slurm: bool):
        self.jobs, self.configs, self.sweep, self.on_slurm = jobs, configs, sweep, on_slurm
        self.gone = {j.job_id: 0 for j in jobs}
        self.listed: dict[str, tuple[str, str]] = {}  # the last answer of squeue: {job id: (state, reason)}
        self.why: dict[str, str] = {}  # job id -> why it ended without a result, where reslab knows better
        self.stopped_at: float | None = None
        self.next_queue_check = 0.0

    def run(self) -> None:
        # Imported here: Hydra imports this module whenever it scans its plugins, and reslab.training is heavy.
        from reslab.signals import sweep_stopping

        while running := self.running():
            if self.stopped_at is None and sweep_stopping(self.sweep) is not None:
                self.stop(running)
            elif self.stopped_at is not None and time.monotonic() - self.stopped_at > STOP_GRACE_S:
                self.cancel(running, f"did not end within {STOP_GRACE_S:.0f} s of the stop")
            time.sleep(POLL_S)

    def running(self) -> list:
        """The jobs that have not ended: no result yet (submitit's check: the result file, then sacct) and, on SLURM,
        still in the queue. A job that squeue has stopped listing, with no result, GONE_CHECKS times in a row has
        ended, even where sacct says nothing (a cluster without accounting)."""
        running = [j for j in self.jobs if not j.done()]
        if not self.on_slurm or not running or time.monotonic() < self.next_queue_check:
            return running
        self.next_queue_check = time.monotonic() + QUEUE_EVERY_S
        listed = slurm.queue([j.job_id for j in running])  # one call for the whole sweep
        if listed is None:  # squeue did not answer: nothing learned
            return running
        self.listed = listed
        for job in running:
            self.gone[job.job_id] = 0 if job.job_id in listed else self.gone[job.job_id] + 1
        gone = [j for j in running if self.gone[j.job_id] >= GONE_CHECKS]
        for job in gone:
            job.done(force_check=True)  # sacct's final state, for the record, where the cluster keeps accounts
        if self.stopped_at is None:
            self.cancel_hopeless([j for j in running if j not in gone])
        return [j for j in running if j not in gone]

    def stop(self, running: list) -> None:
        """The user stopped the sweep: running jobs checkpoint and end (SIGTERM), pending ones are cancelled.
        Local jobs are the command's own children and already have the signal (`SweepStop`)."""
        self.stopped_at = time.monotonic()
        if self.on_slurm:
            ids = [j.job_id for j in running]
            slurm.cancel(ids, state="PENDING")
            slurm.cancel(ids, signal="TERM")
            log.warning("stopping the sweep: %d SLURM job(s) signalled to checkpoint, pending ones cancelled", len(ids))

    def cancel(self, running: list, why: str) -> None:
        for job in running:
            self.why.setdefault(job.job_id, why)
            job.cancel(check=False)
        self.stopped_at = float("inf") if self.stopped_at is not None else None

    def cancel_hopeless(self, running: list) -> None:
        """Cancel a pending job that can never start, saying why in SLURM's words or which request to lower."""
        for job in running:
            state, reason = self.listed.get(job.job_id, ("", ""))
            never = reason in slurm.NEVER_CLEARS or reason.endswith("PerJobLimit")
            maybe = reason in ("Resources", "Priority") or reason.startswith("Nodes_required")
            if state != "PENDING" or not (never or maybe) or job.job_id in self.why:
                continue
            hopeless = slurm.larger_than_any_node(job.job_id) or (
                f"SLURM holds it pending for {reason}, which waiting does not clear (scontrol show job {job.job_id})"
                if never
                else None
            )
            if hopeless:
                log.error("SLURM job %s can never start: %s; cancelled", job.job_id, hopeless)
                self.cancel([job], f"never started: {hopeless}")

    def job_return(self, i: int, overrides: list[str]) -> JobReturn:
        """The job's own return (Hydra's JobReturn from the job's process), or, for a job that ended without one,
        a completed return of NaN after recording the failure: Hydra re-raises a failed job's error, which would
        end the sweep (a tuning sweeper reads NaN as a failed trial)."""
        from reslab.cli.launchers_local import contained

        job, cfg = self.jobs[i], self.configs[i]
        try:
            ret = job.results()[0]
        except Exception as e:  # submitit's UncompletedJobError / FailedJobError
            # Jobs the user's stop cancelled before they started are left for the rerun, with no record.
            if self.stopped_at is None or Path(cfg.output_dir).exists() or job.job_id in self.why:
                self.record(job, cfg, e)
            return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=float("nan"))
        return contained(ret, lambda: cfg, overrides)  # a job whose task raised: recorded, the sweep goes on

    def record(self, job, cfg: DictConfig, error: Exception) -> None:
        from reslab.jobdir import record_failure

        out = Path(cfg.output_dir)
        who = f"SLURM job {job.job_id}" if self.on_slurm else f"job {job.job_id}"
        if job.job_id in self.why:
            line = f"{self.why[job.job_id]}; its log: {job.paths.stderr}"
        elif type(error).__name__ == "FailedJobError":  # an error raised in the job before reslab's own code ran
            line = f"{who} raised an error outside reslab's job; its log: {job.paths.stderr}"
        else:  # UncompletedJobError: the process ended without writing a result
            state = f" ({job.state})" if self.on_slurm else ""  # sacct's word: FAILED, OUT_OF_MEMORY, NODE_FAIL, ...
            line = f"{who} ended{state} without a result (killed, out of memory?); its log: {job.paths.stderr}"
        out.mkdir(parents=True, exist_ok=True)
        if record_failure(cfg, line, str(error)) is not None:
            print(f"reslab: job {out.name} failed: {line}", file=sys.stderr)

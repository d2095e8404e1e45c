"""Searches (``reslab -m hparams_search=lr``, the ``reslab[tune]`` extra): hydra-optuna-sweeper's search, resumable.

hydra-optuna-sweeper 1.3.0 (on optuna 2.10) keeps its study in memory and asks ``n_trials`` new trials at every
launch, so a killed search rerun starts over with new trials, and one job that could not run (objective NaN) ends
the whole search with two tracebacks (optuna refuses to be told NaN, then refuses the FAIL the sweeper tells it
with the same NaN; Hydra #3328 lists the rest). `ResumableSearch` runs the same search (the same config, search
space, samplers and results file) with the contract every reslab sweep keeps:

- The study lives in the sweep directory (``optuna.db``, SQLite) unless ``hydra.sweeper.storage`` names another, so
  rerunning the same command continues it: the trials that ended are kept, a trial whose job did not end (killed,
  interrupted, failed) is run again with its own parameters, in its own directory, where the job resumes from its
  checkpoint, and new trials are asked only until the study holds ``n_trials``. ``hydra.sweeper.n_trials=30`` on a
  rerun takes the same search further.
- With a sampler seed, trial *n* is proposed by a sampler seeded from (seed, n), not by one random stream through
  the whole search, so a search resumed after a kill proposes exactly what the undisturbed search would have.
- A job that did not end leaves its trial unfinished (optuna: RUNNING), not failed: the search goes on, the command
  exits 1, and the rerun resumes the trial. Only ended jobs are told: finished (its validation error), diverged
  (error 1, `reslab.cli.hydra_app.objective`).
- A rerun with another experiment (any setting outside ``hydra.*`` that changes what a job computes, or another
  search space) is refused in one line, as is a second launch while the first still runs (a lock in the sweep
  directory): one search per sweep directory.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import OmegaConf
from optuna.trial import Trial, TrialState

from reslab.files import write_text_atomic

log = logging.getLogger(__name__)

STUDY_FILE = "optuna.db"  # in the sweep directory, unless hydra.sweeper.storage names another storage
SEARCH_LOCK = ".search.lock"  # in the sweep directory, held while a search runs there
IDENTITY_ATTR = "reslab_identity"  # the study's user attribute: the experiment its trials belong to
ENDED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


class SearchRefused(SystemExit):
    """A rerun that would mix another experiment, or a second launch, into a search: one line, exit status 2."""

    def __init__(self, line: str):
        print(f"reslab: error: {line}", file=sys.stderr)
        super().__init__(2)


def sqlalchemy_error() -> type[Exception]:
    """The errors of Optuna's SQL storage that it passes on unwrapped (a full disk while it commits)."""
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # no SQL storage installed
        return optuna.exceptions.OptunaError
    return SQLAlchemyError


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed for trial ``number`` of a search seeded with ``seed``."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(number)]).generate_state(1)[0])


def job_values(ret: JobReturn, n_objectives: int) -> list[float] | None:
    """The values to tell the study for a job's return; None when the job did not end (it failed, was interrupted,
    or never started: NaN, `reslab.cli.hydra_app.objective`)."""
    if ret.status != JobStatus.COMPLETED:
        return None
    value = ret.return_value
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if len(values) != n_objectives or any(math.isnan(v) for v in values):
        return None
    return values


class ResumableSearch(OptunaSweeperImpl):
    """hydra-optuna-sweeper's sweeper, resumable (module docstring)."""

    def sweep(self, arguments: list[str]) -> None:
        self._process_searchspace_config()
        space, fixed = create_params_from_overrides([*self._parse_sweeper_params_config(), *arguments])
        space = {**(self.search_space_distributions or {}), **space}
        for name in fixed:
            space.pop(name, None)
        self.space, self.fixed = space, fixed
        self._grid(space)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            with search_lock(sweep_dir):
                study = self._study(sweep_dir)
                # What Hydra's basic sweeper saves and Optuna's does not: `reslab status` counts the trials from it.
                write_text_atomic(sweep_dir / "multirun.yaml", OmegaConf.to_yaml(self.config))
                self._search(study, sweep_dir)
                self._save_results(study, sweep_dir)
        except (OSError, optuna.exceptions.OptunaError, sqlalchemy_error()) as e:
            # A full disk, found by tools/chaos.py: the study's transaction is rolled back, so a trial whose job
            # ended but could not be told stays unfinished, and the rerun reads its job's record and tells it.
            print(f"reslab: error: the search in {sweep_dir} could not read or write its study or files "
                  f"({type(e).__name__}: {str(e).splitlines()[0]}); free the space or fix the storage, then rerun "
                  "the command to continue it", file=sys.stderr)  # fmt: skip
            raise SystemExit(1) from None

    def _grid(self, space: dict) -> None:
        """The grid sampler takes the search space itself and caps the trials at the grid's size (as Hydra's)."""
        import functools

        self.grid = isinstance(self.sampler, functools.partial) and self.sampler.func == optuna.samplers.GridSampler
        if self.grid:
            choices = {name: self._to_grid_sampler_choices(d) for name, d in space.items()}
            self.sampler = self.sampler(choices)
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in choices.values()))

    def _study(self, sweep_dir: Path) -> optuna.Study:
        storage = self.storage or f"sqlite:///{sweep_dir / STUDY_FILE}"
        if not self.storage:  # the sweep directory's own study file: one search per sweep directory
            names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
            if names and self.study_name not in names:
                raise SearchRefused(
                    f"{sweep_dir} holds the search {names[0]!r}, not {self.study_name!r}; one search per sweep "
                    "directory: give this one another hydra.sweep.dir"
                )
        study = optuna.create_study(study_name=self.study_name, storage=storage, sampler=self.sampler,
                                    directions=self._get_directions(), load_if_exists=True)  # fmt: skip
        identity = self._identity()
        saved = study.user_attrs.get(IDENTITY_ATTR)
        if saved is None:
            study.set_user_attr(IDENTITY_ATTR, identity)
        else:
            from reslab.record import identity_differences

            if differ := identity_differences(saved, identity):
                raise SearchRefused(
                    f"{sweep_dir} holds the search {study.study_name!r} of a different experiment: "
                    f"{', '.join(differ)}; rerun it with its own settings, or give this one another hydra.sweep.dir"
                )
        log.info(f"Study {study.study_name} in {storage}")
        return study

    def _identity(self) -> dict:
        """What makes two launches the same search: every setting of a trial's config that changes what its job
        computes (`reslab.record.identity_values`), less the searched keys, and the search space itself."""
        from reslab.record import identity_values

        cfg = self.hydra_context.config_loader.load_sweep_config(
            self.config, [f"{k}={v}" for k, v in self.fixed.items()]
        )
        values = {k: v for k, v in identity_values(cfg).items() if k not in self.space}
        return json.loads(json.dumps({**values, **{f"search:{k}": str(d) for k, d in self.space.items()}}))

    def _search(self, study: optuna.Study, sweep_dir: Path) -> None:
        from reslab.signals import sweep_stopping

        trials = study.get_trials(deepcopy=False)
        unfinished = [t for t in trials if t.state not in ENDED]
        to_ask = max(0, self.n_trials - len(trials))
        log.info(f"{len(trials) - len(unfinished)} trial(s) ended, {len(unfinished)} to resume, {to_ask} to ask "
                 f"(n_trials={self.n_trials})")  # fmt: skip
        if unfinished:  # the jobs of a killed or failed launch, with their own parameters
            self._run(study, [Trial(study, t._trial_id) for t in unfinished])
        while to_ask > 0 and sweep_stopping(sweep_dir) is None:
            batch = []
            for _ in range(min(to_ask, self.n_jobs)):
                study.sampler = self._sampler(len(study.get_trials(deepcopy=False)))
                batch.append(study.ask())
            if self._run(study, batch) > self.max_failure_rate * len(batch):
                log.error(f"{self.max_failure_rate=} exceeded: the search stops; rerun the command to resume it")
                break
            to_ask -= len(batch)

    def _sampler(self, number: int) -> Any:
        """The sampler for trial ``number``: seeded from (seed, number) when the search has a seed."""
        cfg = self.config.hydra.sweeper.get("sampler")
        seed = cfg.get("seed") if cfg is not None and not self.grid else None
        return self.sampler if seed is None else instantiate(cfg, seed=trial_seed(seed, number))

    def _run(self, study: optuna.Study, trials: list[Trial]) -> int:
        """Launch one batch of trials, tell the study those whose jobs ended; how many did not."""
        overrides = []
        for trial in trials:  # each suggested with its own sampler (a resumed trial keeps its parameters)
            study.sampler = self._sampler(trial.number)
            overrides.extend(self._configure_trials([trial], self.space, self.fixed))
        returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
        self.job_idx = max(self.job_idx, trials[-1].number + 1)
        not_ended = 0
        for trial, ret, args in zip(trials, returns, overrides):
            values = job_values(ret, len(self._get_directions()))
            if values is None:
                not_ended += 1
                log.warning(f"trial {trial.number} ({' '.join(args[: len(self.space)])}) did not end; "
                            "rerun the command to resume it")  # fmt: skip
                continue
            study.tell(trial.number, values)
        return not_ended

    def _save_results(self, study: optuna.Study, sweep_dir: Path) -> None:
        """``optimization_results.yaml`` as Hydra's sweeper writes it, over the trials that ended."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            log.warning("no trial has ended yet: no optimization_results.yaml")
            return
        if len(study.directions) == 1:
            best = study.best_trial
            results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
            log.info(f"Best parameters: {best.params}")
            log.info(f"Best value: {best.value}")
        else:
            results = {
                "name": "optuna",
                "solutions": [{"params": t.params, "values": t.values} for t in study.best_trials],
            }
        write_text_atomic(sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results)))


class search_lock:
    """Hold ``<sweep dir>/.search.lock`` while the search runs; a second launch is refused (the kernel releases the
    lock however the first dies, so a killed search never blocks its rerun)."""

    def __init__(self, sweep_dir: Path):
        self.path = sweep_dir / SEARCH_LOCK

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise SearchRefused(
                f"a search is running in {self.path.parent} already; wait for it to end (or stop it), then rerun "
                "the command to continue it"
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)

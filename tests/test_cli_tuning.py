"""Tuning: the job's objective, and a real Optuna search (``reslab -m hparams_search=lr``, the tune extra)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, TINY
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from reslab.cli.hydra_app import objective
from reslab.cli.tuning import FailedJobIsFailedTrial, JobFailed
from reslab.errors import UserError
from reslab.overrides import preflight


def test_the_objective_is_the_final_validation_error_one_if_diverged_nan_if_the_job_could_not_run():
    assert objective({"status": "finished", "val_error": 0.25, "test_error": 0.1}) == 0.25  # never the test error
    assert objective({"status": "diverged", "val_error": 0.3}) == 1.0
    assert objective({"status": "diverged"}) == 1.0
    assert math.isnan(objective({"status": "failed"}))
    assert math.isnan(objective({"status": "finished", "val_error": None}))


def _job_return(value, job_dir="/sweep/plain-8_seed0_optim.lr=0.1") -> JobReturn:
    hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": job_dir}}})
    return JobReturn(hydra_cfg=hydra_cfg, status=JobStatus.COMPLETED, _return_value=value)


def test_a_job_that_could_not_run_reaches_the_sweeper_as_a_failed_trial():
    failed = _job_return(float("nan"))
    FailedJobIsFailedTrial().on_job_end(config=OmegaConf.create(), job_return=failed)
    assert failed.status == JobStatus.FAILED
    with pytest.raises(JobFailed, match=r"plain-8_seed0_optim.lr=0.1 could not run"):
        float(failed.return_value)  # as the sweeper reads it: it records a failed trial and goes on
    for value in (0.25, 1.0):  # finished and diverged jobs are untouched
        done = _job_return(value)
        FailedJobIsFailedTrial().on_job_end(config=OmegaConf.create(), job_return=done)
        assert done.status == JobStatus.COMPLETED and done.return_value == value


def test_a_search_is_checked_before_it_starts(tmp_path):
    sweep = [f"hydra.sweep.dir={tmp_path}/sweep"]
    with pytest.raises(UserError, match="^unknown hyperparameter search 'nope'; choose one of: lr$"):
        preflight(["-m", *TINY, "hparams_search=nope", *sweep])
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the tune extra: pip install -e '.[tune]'")
    # Another search range, as Optuna's sweeper takes it: checked by its two ends.
    preflight(["-m", *TINY, "hparams_search=lr", "optim.lr=tag(log,interval(0.001,0.3))", *sweep])
    with pytest.raises(UserError, match="optim.lr=-1.0 is out of range"):
        preflight(["-m", *TINY, "hparams_search=lr", "optim.lr=tag(log,interval(-1,0.3))", *sweep])


def search(sweep, run_env, *overrides: str) -> subprocess.CompletedProcess:
    """``reslab -m hparams_search=lr`` over tiny jobs, 3 trials, without figures (seconds a trial, not tens)."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the tune extra: pip install -e '.[tune]'")
    cmd = [
        sys.executable,
        "-m",
        "reslab",
        "-m",
        *TINY,
        "hparams_search=lr",
        "hydra.sweeper.n_trials=3",
        "callbacks.grad_norms.figure_every_n_steps=0",
        "callbacks.responses.figure_every_n_steps=0",
        "hydra.callbacks.report.figures=false",
        *overrides,
        f"hydra.sweep.dir={sweep}",
    ]
    return subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # an Optuna sweep of several trials in subprocesses; the objective is tested fast above
def test_an_lr_search_trains_each_trial_in_its_own_directory_and_reports_the_best(tmp_path, run_env):
    sweep = tmp_path / "sweep"
    proc = search(sweep, run_env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "metrics.json").exists())
    assert len(jobs) == 3 and all(p.name.startswith("residual-8_seed0_optim.lr=") for p in jobs), jobs
    metrics = {p.name: json.loads((p / "metrics.json").read_text()) for p in jobs}
    assert {m["status"] for m in metrics.values()} == {"finished"}
    lrs = {p.name: yaml.safe_load((p / "config.yaml").read_text())["optim"]["lr"] for p in jobs}
    assert len(set(lrs.values())) == 3  # each trial trained with its own lr ...
    for name, lr in lrs.items():  # ... the one its directory is named with, within the searched range
        assert name.endswith(f"_optim.lr={lr}") and 0.01 <= lr <= 1.0

    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    errors = {name: m["val_error"] for name, m in metrics.items()}
    assert results["best_value"] == min(errors.values())  # the objective is the jobs' own final val_error
    best = next(name for name, lr in lrs.items() if lr == results["best_params"]["optim.lr"])
    assert errors[best] == results["best_value"]
    summary = (sweep / "summary.md").read_text()
    assert all(f"| residual (optim.lr={lr})" in summary for lr in lrs.values())


@pytest.mark.slow  # the fast suite runs one search (above); this second one checks failed trials
def test_a_search_goes_on_past_a_job_that_could_not_run_and_exits_1(tmp_path, run_env):
    sweep = tmp_path / "sweep"
    # The dataset becomes a second parameter of the search; mnist has no files here and downloads are off.
    proc = search(sweep, run_env, "dataset=synthetic,mnist", "dataset.download=false", f"data_dir={tmp_path}/nodata")
    assert proc.returncode == 1, proc.stderr[-3000:]
    statuses = {p.name: json.loads((p / "metrics.json").read_text())["status"] for p in sweep.iterdir() if p.is_dir()}
    assert len(statuses) == 3  # every trial ran: the failed one did not end the search
    assert statuses == {name: ("failed" if "dataset=mnist" in name else "finished") for name in statuses}
    assert set(statuses.values()) == {"failed", "finished"}, statuses  # (seed 0 draws both datasets)
    assert proc.stdout.count("Failed experiment: job residual-8_seed0_dataset=mnist") == len(
        [s for s in statuses.values() if s == "failed"]
    )
    assert "did not finish" in proc.stderr and "Traceback" not in proc.stderr
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_params"]["dataset"] == "synthetic"

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

from reslab.cli.hydra_app import objective
from reslab.cli.tuning import job_values, trial_seed
from reslab.errors import UserError
from reslab.overrides import preflight


def test_the_objective_is_the_final_validation_error_one_if_diverged_nan_if_the_job_could_not_run():
    assert objective({"status": "finished", "val_error": 0.25, "test_error": 0.1}) == 0.25  # never the test error
    assert objective({"status": "diverged", "val_error": 0.3}) == 1.0
    assert objective({"status": "diverged"}) == 1.0
    assert math.isnan(objective({"status": "failed"}))
    assert math.isnan(objective({"status": "finished", "val_error": None}))


def _job_return(value, status=JobStatus.COMPLETED) -> JobReturn:
    return JobReturn(status=status, _return_value=value)


def test_only_a_job_that_ended_is_told_to_the_study():
    assert job_values(_job_return(0.25), 1) == [0.25] and job_values(_job_return(1.0), 1) == [1.0]  # diverged: 1
    assert job_values(_job_return(float("nan")), 1) is None  # could not run, interrupted, or not started
    assert job_values(_job_return(RuntimeError("setup failed"), JobStatus.FAILED), 1) is None
    assert job_values(_job_return((0.2, 3.0)), 2) == [0.2, 3.0]
    assert job_values(_job_return((0.2, 3.0)), 1) is None and job_values(_job_return("x"), 1) is None


def test_trial_n_has_its_own_seed_from_the_search_seed_and_n():
    seeds = {trial_seed(s, n) for s in (0, 1) for n in range(50)}
    assert len(seeds) == 100 and all(0 <= x < 2**32 for x in seeds)
    assert trial_seed(0, 7) == trial_seed(0, 7)


def test_a_search_is_checked_before_it_starts(tmp_path):
    sweep = [f"hydra.sweep.dir={tmp_path}/sweep"]
    with pytest.raises(UserError, match="^unknown hyperparameter search 'nope'; choose one of: lr$"):
        preflight(["-m", *TINY, "hparams_search=nope", *sweep])
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the tune extra: pip install -e '.[tune]'")
    # Another search range, as Optuna's sweeper takes it: checked by its two ends.
    preflight(["-m", *TINY, "hparams_search=lr", "optim.lr=tag(log,interval(0.001,0.3))", *sweep])
    with pytest.raises(UserError, match="optim.lr=-1.0 is out of range"):
        preflight(["-m", *TINY, "hparams_search=lr", "optim.lr=tag(log,interval(-1,0.3))", *sweep])


def search_command(sweep, *overrides: str, n_trials: int = 3) -> list[str]:
    """``reslab -m hparams_search=lr`` over tiny jobs, without figures (seconds a trial, not tens)."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the tune extra: pip install -e '.[tune]'")
    return [
        sys.executable,
        "-m",
        "reslab",
        "-m",
        *TINY,
        "hparams_search=lr",
        f"hydra.sweeper.n_trials={n_trials}",
        "callbacks.grad_norms.figure_every_n_steps=0",
        "callbacks.responses.figure_every_n_steps=0",
        "hydra.callbacks.report.figures=false",
        *overrides,
        f"hydra.sweep.dir={sweep}",
    ]


def search(sweep, run_env, *overrides: str, n_trials: int = 3) -> subprocess.CompletedProcess:
    cmd = search_command(sweep, *overrides, n_trials=n_trials)
    return subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300)


def study_trials(sweep, name: str = "lr_residual-8") -> list[tuple]:
    """The sweep directory's study, trial by trial: (number, state, parameters, value)."""
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{sweep}/optuna.db")
    return [(t.number, t.state.name, t.params, t.value) for t in study.trials]


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
    # The study is kept in the sweep directory, each trial told its job's error.
    trials = study_trials(sweep)
    assert [s for _, s, _, _ in trials] == ["COMPLETE"] * 3
    assert sorted(v for *_, v in trials) == sorted(errors.values())
    status = subprocess.run([sys.executable, "-m", "reslab", "status", str(sweep)], env=run_env, capture_output=True,
                            text=True)  # fmt: skip
    assert status.returncode == 0 and "3 job(s) of 3 have a record: 3 finished" in status.stdout, status.stdout
    # Another arm's search into the same sweep directory is another study: refused, nothing trained.
    other = search(sweep, run_env, "model=plain")
    assert other.returncode == 2 and other.stderr.strip().splitlines()[-1] == (
        f"reslab: error: {sweep} holds the search 'lr_residual-8', not 'lr_plain-8'; one search per sweep directory: "
        "give this one another hydra.sweep.dir"
    )
    assert not list(sweep.glob("plain-*"))


@pytest.mark.slow  # the fast suite runs one search (above); this second one checks failed trials
def test_a_search_goes_on_past_a_job_that_could_not_run_and_its_rerun_retries_that_trial(tmp_path, run_env):
    sweep = tmp_path / "sweep"
    # The dataset becomes a second parameter of the search; mnist has no files here and downloads are off.
    cmd = ["dataset=synthetic,mnist", "dataset.download=false", f"data_dir={tmp_path}/nodata"]
    proc = search(sweep, run_env, *cmd)
    assert proc.returncode == 1, proc.stderr[-3000:]
    statuses = {p.name: json.loads((p / "metrics.json").read_text())["status"] for p in sweep.iterdir() if p.is_dir()}
    assert len(statuses) == 3  # every trial ran: the failed one did not end the search
    assert statuses == {name: ("failed" if "dataset=mnist" in name else "finished") for name in statuses}
    assert set(statuses.values()) == {"failed", "finished"}, statuses  # (seed 0 draws both datasets)
    failed = [s for s in statuses.values() if s == "failed"]
    assert proc.stdout.count("did not end; rerun the command to resume it") == len(failed), proc.stdout[-3000:]
    assert "did not finish" in proc.stderr and "Traceback" not in proc.stderr
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_params"]["dataset"] == "synthetic"
    # Its trial is left unfinished, not failed: the rerun runs it again, in its own directory, and asks nothing new.
    trials = study_trials(sweep, "lr_residual-8")
    unfinished = [params for _, state, params, _ in trials if state == "RUNNING"]
    assert len(unfinished) == len(failed) and all(p["dataset"] == "mnist" for p in unfinished)
    again = search(sweep, run_env, *cmd)
    assert (
        again.returncode == 1
        and f"{len(trials) - len(failed)} trial(s) ended, {len(failed)} to resume, 0 to ask" in again.stdout
    )
    assert study_trials(sweep) == trials and len([p for p in sweep.iterdir() if p.is_dir()]) == 3


@pytest.mark.slow  # three searches of 200-step trials in subprocesses, one killed
def test_a_killed_search_rerun_ends_with_the_undisturbed_searchs_trials_each_once(tmp_path, run_env):
    import signal

    from conftest import wait_for

    from reslab.results.runs import load_sweep

    # 200 steps (a few seconds a trial) to kill one mid-training; TPE from trial 1, so proposals read the results.
    args = ["trainer.max_steps=200", "hydra.sweeper.sampler.n_startup_trials=1"]
    reference = tmp_path / "undisturbed"
    assert search(reference, run_env, *args).returncode == 0

    sweep = tmp_path / "killed"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(search_command(sweep, *args), cwd=ROOT, env=run_env, stdout=log, stderr=log)
    try:
        assert wait_for(lambda: (sweep / "optuna.db").exists(), 60)
        second = search(sweep, run_env, *args)  # a second launch of the same search while the first runs
        assert second.returncode == 2, second.stderr[-2000:]
        assert second.stderr.strip().splitlines()[-1].startswith(f"reslab: error: a search is running in {sweep}")
        # SIGKILL to the launching process (the basic launcher: the job trains in it) once trial 1 has checkpointed.
        assert wait_for(lambda: len(list(sweep.glob("*/checkpoints/last.ckpt"))) >= 2, 120)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        first.kill()
    died = [r for r in load_sweep(sweep, series=False) if r.status != "finished"]
    assert len(died) == 1 and died[0].record["steps"] < 200, "the kill must land while trial 1 trains"
    status = subprocess.run([sys.executable, "-m", "reslab", "status", str(sweep)], env=run_env, capture_output=True,
                            text=True)  # fmt: skip
    assert status.returncode == 1 and "1 not started" in status.stdout and "died" in status.stdout, status.stdout

    other = search(sweep, run_env, "trainer.max_steps=300", "hydra.sweeper.sampler.n_startup_trials=1")
    assert other.returncode == 2 and "of a different experiment: trainer.max_steps=200 (this run: 300)" in other.stderr
    rerun = search(sweep, run_env, *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "1 trial(s) ended, 1 to resume, 1 to ask (n_trials=3)" in rerun.stdout

    # The same three trials as the undisturbed search (parameters and values), each once, each job trained once.
    assert study_trials(sweep) == study_trials(reference) and len(study_trials(sweep)) == 3
    runs, undisturbed = load_sweep(sweep), {r.path.name: r for r in load_sweep(reference)}
    assert sorted(r.path.name for r in runs) == sorted(undisturbed)
    for run in runs:
        steps = list(run.curves["train/loss"][0])
        assert run.record["steps"] == 200 and len(set(steps)) == len(steps) and max(steps) <= 200  # resumed
        assert run.record["val_error"] == undisturbed[run.path.name].record["val_error"]


def test_a_study_that_cannot_be_written_ends_the_search_in_one_line(tmp_path, run_env):
    # As a full disk does (found by tools/chaos.py): here, a storage in a folder that does not exist.
    proc = search(tmp_path / "sweep", run_env, f"hydra.sweeper.storage=sqlite:///{tmp_path}/missing/study.db")
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"reslab: error: the search in {tmp_path}/sweep could not read or write its study")
    assert last.endswith("then rerun the command to continue it") and "Traceback" not in proc.stderr

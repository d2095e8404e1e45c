"""Sweeps under Hydra's joblib and submitit launchers, where jobs run in other processes: each job named from its
own config, the exit status and the report read from the jobs' records."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, TINY


@pytest.mark.parametrize(
    "launcher",
    [["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], ["hydra/launcher=submitit_local"]],
    ids=["joblib", "submitit_local"],
)
def test_a_sweep_under_another_launcher_keeps_jobs_apart_and_reports_its_failure(launcher, tmp_path, run_env):
    sweep = tmp_path / "sweep"
    # optim.lr is not in the run's name; dataset=mnist has no files here and downloads are off: that job fails.
    cmd = [
        sys.executable,
        "-m",
        "reslab",
        "-m",
        *TINY,
        "model=plain",
        "optim.lr=0.1,0.05",
        "dataset=synthetic,mnist",
        "dataset.download=false",
        f"data_dir={tmp_path}/nodata",
        *launcher,
        f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert jobs == [
        f"plain-8_seed0_optim.lr={lr}_dataset={d}" for lr in ("0.05", "0.1") for d in ("mnist", "synthetic")
    ]
    statuses = {j: json.loads((sweep / j / "metrics.json").read_text())["status"] for j in jobs}
    assert statuses == {j: ("failed" if "mnist" in j else "finished") for j in jobs}
    for lr in ("0.05", "0.1"):  # each job trained with its own lr, not another job's
        assert f"lr: {lr}" in (sweep / f"plain-8_seed0_optim.lr={lr}_dataset=synthetic" / "config.yaml").read_text()
    summary = (sweep / "summary.md").read_text()
    assert summary.count("| plain (optim.lr=") == 4 and "## Jobs that did not finish" in summary
    assert "2 job(s) of" in proc.stderr and "did not finish" in proc.stderr

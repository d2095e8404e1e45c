"""``reslab status SWEEP_DIR`` and the sweep's exit code: every job's state read from its own record and lock, the
jobs that never started counted from the launch's own multirun.yaml (Hydra's expansion of the command line)."""

from __future__ import annotations

import json
import shutil

import yaml

from reslab.cli import sweep_exit_code
from reslab.cli.status import expected_jobs, main
from reslab.jobdir import JobLock


def write_launch(sweep, task: list[str], sweeper: dict | None = None) -> None:
    """A multirun.yaml as Hydra writes it (only the parts reslab reads)."""
    hydra = {"overrides": {"task": task}, "sweeper": sweeper or {"params": None}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))


def set_status(job, status: str, **extra) -> None:
    record = json.loads((job / "metrics.json").read_text())
    (job / "metrics.json").write_text(json.dumps({**record, "status": status, **extra}))


def test_the_expected_jobs_are_hydras_expansion_of_the_launch(tmp_path):
    write_launch(tmp_path, ["debug=tiny", "depth=8,14,20", "model=plain,residual", "seed=0,1", "optim.lr=0.1"])
    assert expected_jobs(tmp_path) == 12
    write_launch(tmp_path, ["hparams_search=lr"], {"n_trials": 7})
    assert expected_jobs(tmp_path) == 7  # a tuning sweeper: its stated total
    (tmp_path / "multirun.yaml").write_text("{not yaml")
    assert expected_jobs(tmp_path) is None


def test_status_says_what_a_rerun_will_do_and_exits_1_until_the_sweep_is_complete(tiny_sweep, tmp_path, capsys):
    sweep = shutil.copytree(tiny_sweep, tmp_path / "sweep")
    jobs = {p.name: p for p in sweep.iterdir() if (p / "metrics.json").exists()}
    shutil.rmtree(jobs.pop("plain-8_seed0_optim.lr=0.05"))
    shutil.rmtree(jobs.pop("residual-20_seed0"))  # the failed one; statuses are set by hand below
    write_launch(sweep, ["debug=tiny", "depth=8,14", "model=plain,residual", "seed=0,1"])  # 8 jobs, 6 on disk
    set_status(jobs["plain-8_seed1"], "interrupted", steps=4, max_steps=8)
    set_status(jobs["residual-8_seed1"], "running")  # nobody holds its lock: it died
    set_status(jobs["residual-14_seed0"], "running")
    (jobs["plain-14_seed0"] / "checkpoints" / "last.ckpt").unlink()
    set_status(jobs["plain-14_seed0"], "failed", error="OSError: no space left")
    with JobLock(jobs["residual-14_seed0"]):  # a process trains it now
        assert main([str(sweep)]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()[0] in jobs}
    assert "finished" in lines["plain-8_seed0"] and "kept" in lines["plain-8_seed0"]
    assert "interrupted  step 4 of 8" in lines["plain-8_seed1"]
    assert "resumed from its checkpoint" in lines["plain-8_seed1"]
    assert "died" in lines["residual-8_seed1"] and "resumed" in lines["residual-8_seed1"]
    assert "running" in lines["residual-14_seed0"] and "left alone" in lines["residual-14_seed0"]
    assert "failed" in lines["plain-14_seed0"] and "from the start: it has no checkpoint" in lines["plain-14_seed0"]
    assert "6 job(s) of 8 have a record: 1 died, 1 failed, 2 finished, 1 interrupted, 1 running, 2 not started" in out
    assert "trains 5 job(s) and leaves the 1 running one(s) alone (the not-started jobs included)" in out
    assert sweep_exit_code(sweep) == 1
    assert "2 job(s) of" in capsys.readouterr().err  # the launch's own exit code counts the missing jobs too

    for job in jobs.values():
        set_status(job, "finished")
    assert sweep_exit_code(sweep) == 1  # every record finished, but 2 of the launch's 8 jobs have none
    capsys.readouterr()
    write_launch(sweep, ["debug=tiny", "depth=8,14", "model=plain,residual", "seed=0"])  # 4 jobs ...
    shutil.rmtree(jobs["plain-8_seed1"])
    shutil.rmtree(jobs["residual-8_seed1"])  # ... all on disk, all finished
    assert main([str(sweep)]) == 0 and "the sweep is complete: a rerun trains nothing" in capsys.readouterr().out
    assert sweep_exit_code(sweep) == 0


def test_status_of_something_that_is_not_a_sweep_is_one_line_and_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("reslab: error: ") and "is not a directory" in err[0]
    assert "no jobs (no metrics.json) and no multirun.yaml" in err[1]

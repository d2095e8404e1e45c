"""The `reslab` command: sub-commands, the packaged config, job names from each job's own config, the debug
presets and a clean console."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, TINY

from reslab.cli import main
from reslab.job import train
from reslab.record import RunRecord
from reslab.training import ProgressLog

# The tiny sweep holds plain runs at two learning rates, so every plain run is labelled with its lr.
PLAIN = "plain (optim.lr=0.1)"


def reslab(args: list[str], cwd: Path, env: dict, timeout: int = 240) -> subprocess.CompletedProcess:
    """``python -m reslab ...`` as a user runs it, from ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "reslab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_help_lists_the_commands_and_config_groups(tmp_path, run_env):
    proc = reslab(["--help"], tmp_path, run_env)
    assert proc.returncode == 0, proc.stderr
    for text in (
        "reslab report SWEEP_DIR",
        "reslab bench",
        "debug: overfit, profile, tiny",
        "model: plain, residual, residual_b",
    ):
        assert text in proc.stdout, text


def test_report_is_a_sub_command(tiny_sweep, tmp_path, capsys):
    assert main(["report", str(tiny_sweep), "--no-figures"]) == 0
    assert f"| {PLAIN} | 8 |" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_from_another_directory_names_jobs_by_every_swept_key(tmp_path, run_env):
    """From an empty folder (the config comes from the package), a sweep over a key that is not in the run
    name (optim.lr) and over a config group (optim) gets one directory, one record and one report row per job."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = reslab(
        [
            "-m",
            *TINY,
            "model=plain",
            "optim.lr=0.1,0.05",
            "schedule=step,step_warmup",
            "trainer.max_steps=2",
            "hydra.callbacks.report.figures=false",  # the tables are what this test reads
            "hydra.sweep.dir=sweep",
        ],
        work,
        run_env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p.name for p in (work / "sweep").iterdir() if (p / "metrics.json").exists())
    assert jobs == [
        "plain-8_seed0_optim.lr=0.05_schedule=step",
        "plain-8_seed0_optim.lr=0.05_schedule=step_warmup",
        "plain-8_seed0_optim.lr=0.1_schedule=step",
        "plain-8_seed0_optim.lr=0.1_schedule=step_warmup",
    ]
    for job in jobs:
        record = json.loads((work / "sweep" / job / "metrics.json").read_text())
        assert record["job"] == job and record["variant"] == job[len("plain-8_seed0_") :]
        lr = float(job.split("optim.lr=")[1].split("_")[0])
        assert f"lr: {lr}" in (work / "sweep" / job / "config.yaml").read_text()
    summary = (work / "sweep" / "summary.md").read_text()
    assert summary.count("| plain (optim.lr=") == 4


@pytest.mark.slow
def test_progress_lines_when_the_output_is_a_file(tmp_path, run_env):
    """Not a terminal: a line every few percent, each log line once, no vendor tips."""
    proc = reslab(
        [*TINY, "runtime.progress=auto", "runtime.progress_every=25", f"hydra.run.dir={tmp_path}/run"],
        tmp_path,
        run_env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    progress = [line for line in output.splitlines() if "steps/s" in line]
    assert [line.split("step ")[1].split(" ")[0] for line in progress] == ["2/8", "4/8", "6/8", "8/8"]
    assert "ETA" in progress[0] and "loss" in progress[0]
    assert "Tip:" not in output and "LeafSpec" not in output
    stopped = [line for line in output.splitlines() if "`Trainer.fit` stopped" in line]
    assert len(stopped) == 1, output  # Lightning's lines once, through Hydra's log format
    assert (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_progress_log_reports_each_interval_once(tiny_cfg, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="reslab"):
        train(tiny_cfg("runtime.progress=log", "runtime.progress_every=50", out=tmp_path / "job"))
    lines = [r.getMessage() for r in caplog.records if "steps/s" in r.getMessage()]
    assert [line.split(" ")[:2] for line in lines] == [["residual-8_seed0:", "step"]] * 2
    assert [line.split(" ")[2] for line in lines] == ["4/8", "8/8"]
    with pytest.raises(Exception, match="unknown runtime.progress='loud'"):
        ProgressLog.wants_bar("loud")


def test_record_is_built_from_the_config_alone(tiny_cfg):
    cfg = tiny_cfg(
        "model=residual_b", "seed=3", "sweep_keys=[model,seed,optim.lr,dataset.batch_size]", "dataset.batch_size=16"
    )
    record = RunRecord.from_config(cfg)
    assert record.name == "residual_b-8_seed3"
    assert record.variant == ("optim.lr=0.1", "dataset.batch_size=16")
    assert record.job_dir_name == "residual_b-8_seed3_optim.lr=0.1_dataset.batch_size=16"
    identity = record.identity("32-true")
    core = ("model", "shortcut", "depth", "width", "dataset", "seed", "precision")
    assert [identity[k] for k in core] == ["residual_b", "B", 8, 4, "synthetic", 3, "32-true"]
    assert identity["optim.lr"] == 0.1 and identity["dataset.batch_size"] == 16 and "trainer.max_steps" in identity
    assert "trainer.log_every_n_steps" not in identity and "runtime.compile" not in identity
    facts = record.facts(params=123)
    assert facts["run_name"] == record.name and facts["params"] == 123 and facts["seed"] == 3
    hparams = record.hparams(params=123)
    assert {"model", "shortcut", "depth", "seed", "params", "optim.lr", "dataset.batch_size", "model.norm"} <= set(
        hparams
    )
    assert hparams["schedule.milestones"] == "[0.5, 0.75]" and not any("_target_" in k for k in hparams)
    assert not any(k.startswith("runtime") or k in ("channels_last", "compile", "cuda_graph") for k in hparams)
    assert all(v is None or isinstance(v, int | float | str | bool) for v in hparams.values())


@pytest.mark.slow
def test_overfit_preset_drives_the_training_error_down(tmp_path):
    from reslab.config import compose_config

    cfg = compose_config(
        [
            "debug=overfit",
            "dataset=synthetic",
            "depth=8",
            "model.width=8",
            "dataset.batch_size=32",
            "trainer.max_steps=60",
            "trainer.val_check_interval=60",
            "runtime.precision=32",
            "dataset.eval_batch_size=128",
        ],
        output_dir=tmp_path / "job",
    )
    record = train(cfg)
    assert record["status"] == "finished" and record["train_error"] < 0.2  # chance: 0.9


@pytest.mark.slow
def test_profile_preset_writes_where_the_time_went(tmp_path):
    from reslab.config import compose_config

    cfg = compose_config(
        [
            "debug=profile",
            "dataset=synthetic",
            "depth=8",
            "model.width=4",
            "dataset.batch_size=32",
            "dataset.synthetic_train=256",
            "dataset.synthetic_test=64",
            "trainer.max_steps=4",
            "trainer.val_check_interval=4",
            "runtime.precision=32",
        ],
        output_dir=tmp_path / "job",
    )
    train(cfg)
    text = (tmp_path / "job" / "fit-profile.txt").read_text()
    assert "run_training_batch" in text


@pytest.mark.slow
def test_the_installed_package_carries_its_config(tmp_path):
    """A wheel (what `pip install .` installs) holds reslab.conf with every group, and the console command."""
    source = tmp_path / "source"  # a copy: setuptools builds in place and would leave build/ in the checkout
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".*", "build", "*.egg-info", "data", "multirun", "outputs", "experiments", "notebooks"
        ),
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [wheel] = tmp_path.glob("reslab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (ROOT / "conf").rglob("*.yaml"):  # every config file, however deep (hydra/launcher/*.yaml)
        assert f"reslab/conf/{path.relative_to(ROOT / 'conf').as_posix()}" in names, path
    assert "reslab/conf/config.yaml" in names and "reslab/data/cifar.py" in names
    assert "hydra_plugins/reslab_launchers/__init__.py" in names  # the launchers of hydra/launcher=slurm
    assert "hydra_plugins/reslab_sweepers/__init__.py" in names  # the resumable search of hparams_search=lr
    assert "hydra_plugins/__init__.py" not in names  # a namespace shared with Hydra's own plugins
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "reslab = reslab.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_a_checkout_finds_its_config_uninstalled():
    """PYTHONPATH=src without installing (as on a machine where nothing can be installed): conf/ beside src/."""
    from reslab.config import conf_dir

    assert conf_dir("reslab_not_installed.conf") == ROOT / "conf"
    assert (conf_dir() / "config.yaml").is_file()


def test_an_unknown_command_and_the_version(capsys):
    assert main(["reprot", "multirun/x"]) == 2
    assert "unknown command 'reprot'; choose one of: run, report, bench" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("reslab ")

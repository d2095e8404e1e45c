"""``reslab analyze``: what it refuses, each in one line with exit status 2, and what it leaves out of a sweep."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from reslab.cli.analyze import main


def refused(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_path_that_is_no_run_or_sweep(tmp_path, capsys):
    assert "is not a directory" in refused(capsys, "lesion", str(tmp_path / "nowhere"))
    assert "no runs (no metrics.json) under" in refused(capsys, "lesion", str(tmp_path))


def test_an_unknown_analysis(analysis_sweep, capsys):
    err = refused(capsys, "ablation", str(analysis_sweep))
    assert "unknown analysis 'ablation'; choose one of: lesion, landscape, shattered, paths" in err


def test_a_run_without_checkpoints(analysis_sweep, capsys):
    job = analysis_sweep / "plain-8_seed0"
    shutil.rmtree(job / "checkpoints")
    assert "plain-8_seed0 has no checkpoint (checkpoints/last.ckpt)" in refused(capsys, "lesion", str(job))


def test_a_diverged_run(analysis_sweep, capsys):
    job = analysis_sweep / "residual-8_seed0"
    record = json.loads((job / "metrics.json").read_text())
    (job / "metrics.json").write_text(json.dumps({**record, "status": "diverged", "diverged_at_step": 3}))
    assert "residual-8_seed0 diverged (loss not finite at step 3)" in refused(capsys, "lesion", str(job))


def test_a_run_that_did_not_finish(analysis_sweep, capsys):
    err = refused(capsys, "lesion", str(analysis_sweep / "residual-20_seed0"))
    assert "residual-20_seed0 did not finish (status: failed)" in err


def test_a_sweep_mixing_datasets(analysis_sweep, capsys):
    config = analysis_sweep / "plain-14_seed0" / "config.yaml"
    config.write_text(config.read_text().replace("name: synthetic", "name: fashion_mnist"))
    err = refused(capsys, "lesion", str(analysis_sweep))
    assert "are of different datasets (fashion_mnist (downsample 1), synthetic (downsample 1))" in err


def test_a_checkpoint_of_another_step_or_experiment(analysis_sweep, capsys):
    job = analysis_sweep / "plain-8_seed1"
    last = job / "checkpoints" / "last.ckpt"
    torch.save({**torch.load(last, weights_only=True), "global_step": 4}, last)  # an earlier step's weights
    assert "last.ckpt is from step 4 but the run ended at step 8" in refused(capsys, "lesion", str(job))
    shutil.copy(analysis_sweep / "plain-8_seed0" / "checkpoints" / "last.ckpt", job / "checkpoints" / "last.ckpt")
    assert "is of another experiment than the run's metrics.json (differs in seed)" in refused(
        capsys, "lesion", str(job)
    )


def test_a_gpu_asked_for_where_there_is_none(analysis_sweep, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    err = refused(capsys, "lesion", str(analysis_sweep), "--device", "cuda")
    assert "no CUDA GPU is visible" in err


@pytest.mark.slow  # keeps the fast suite under 5 minutes; its parts are tested fast elsewhere
def test_the_command_prints_one_line_and_exits_2(analysis_sweep, run_env):
    shutil.rmtree(analysis_sweep / "plain-8_seed0" / "checkpoints")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "analyze", "lesion", str(analysis_sweep / "plain-8_seed0")],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "reslab: error: plain-8_seed0 has no checkpoint (checkpoints/last.ckpt); analyses need the trained weights: "
        "retrain it (retrain=true) and keep its checkpoints folder"
    ]


@pytest.mark.parametrize("argv", [[], ["--help"]])
def test_the_list_of_analyses(argv, capsys):
    assert main(argv) == (0 if argv else 2)
    out = capsys.readouterr().out
    assert all(kind in out for kind in ("lesion", "landscape", "shattered", "paths"))


def test_a_full_disk_or_read_only_folder(analysis_sweep, capsys, monkeypatch):
    import errno

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("reslab.analysis.runner.write_atomic", full)
    err = refused(capsys, "lesion", str(analysis_sweep / "plain-8_seed0"), "--images", "32")
    assert "lesion.npz: No space left on device; the analysis reads the runs and writes beside them" in err


def test_analyses_find_runs_from_their_records_alone_with_the_reports_labels(tiny_sweep):
    from reslab.results.runs import load_sweep

    full, records = load_sweep(tiny_sweep), load_sweep(tiny_sweep, series=False)
    assert [(r.path, r.arm, r.status) for r in records] == [(r.path, r.arm, r.status) for r in full]
    assert all(r.curves == {} and r.grad_norms is None for r in records)  # no event file or array read
    assert any(r.curves for r in full)

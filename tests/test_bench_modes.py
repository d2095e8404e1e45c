"""`reslab bench --mode job` and `--mode share` run real reslab jobs in subprocesses, as a user launches them,
and report what the jobs' own records say: steps, times, the projection and the speed-up are checked against that
arithmetic (the timings themselves vary, so they are not compared to any figure)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import TINY

from reslab import cli

# The bench's defaults sweep depth and set depth=56: a test gives its tiny depth, which replaces theirs. No figures
# and one validation: the job is mostly its process's start-up.
TINY_JOB = [
    *TINY,
    "depth=8",
    "trainer.val_check_interval=8",
    "callbacks.grad_norms.figure_every_n_steps=0",
    "callbacks.responses.figure_every_n_steps=0",
]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run from an empty folder with no GPU, as the rest of the suite does."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    return tmp_path


def bench(*argv: str) -> int:
    return cli.main(["bench", *argv])


@pytest.mark.slow  # a whole job in a subprocess; the modes' refusals stay fast
def test_schedule_runs_one_job_and_projects_from_its_measured_rate(in_tmp, capsys):
    out, run_dir = in_tmp / "bench.json", in_tmp / "run"
    argv = ["--mode", "job", "--project-steps", "64000", "--run-dir", str(run_dir), "--out", str(out)]
    assert bench(*argv, "--", *TINY_JOB) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    record = json.loads((run_dir / "job" / "metrics.json").read_text())
    assert report["mode"] == "job" and report["status"] == record["status"] == "finished"
    assert report["steps"] == record["steps"] == report["max_steps"] == 8 and report["error"] is None
    assert report["training_s"] == record["wall_time_s"] and report["steps_per_s"] == 8 / record["wall_time_s"]
    assert 0 < report["training_s"] < report["wall_s"]  # launch to exit includes the start-up
    projection = report["projection"]
    assert projection["training_s"] == pytest.approx(64000 / report["steps_per_s"])
    assert projection["launch_to_exit_s"] == pytest.approx(
        report["wall_s"] - report["training_s"] + 64000 / report["steps_per_s"]
    )
    # The job is the paper preset's, shrunk by the tiny preset; the command is the user's.
    (cmd,) = report["commands"]
    assert cmd[1:3] == ["-m", "reslab"] and cmd[3] == "experiment=paper" and "depth=56" not in cmd
    assert cmd[-1] == f"hydra.run.dir={run_dir / 'job'}" and report["dataset"] == "synthetic"
    assert report["peak"]["derivation"] and report["machine"]["accelerator"] == "cpu"
    lines = printed.splitlines()
    assert lines[0].startswith("device: cpu: ") and lines[1] == f"peak: {report['peak']['derivation']}"
    assert "synthetic, CIFAR-shaped: errors mean nothing" in printed and "result: finished" in printed
    assert any(line.split()[:2] == ["projected", "64000"] and "not run" in line for line in lines)
    assert "residual-8_seed0: step 8/8" in printed  # the job's own progress, as it ran
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "job").iterdir())  # for TensorBoard


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--mode", "share", "--jobs", "0"], "--jobs=0 must be at least 1"),
        (["--mode", "job", "--project-steps", "-1"], "--project-steps=-1 must be at least 1"),
        (["--mode", "job", "--jobs", "2"], "--jobs belongs to --mode share"),
        (["--mode", "share", "--loop-overrides", "runtime.compile=default"], "--loop-overrides belongs to --mode step"),
        (["--mode", "job", "--", *TINY_JOB, "trainer.no_such_key=1"], "Could not override 'trainer.no_such_key'"),
        (["--mode", "share", "--", *TINY, "model=plain,resnet"], "unknown model 'resnet'"),
        (["--mode", "share", "--", *TINY, "depth=8,9"], "depth=9"),
        (["--mode", "share", "--", *TINY, "hydra/launcher=joblib"], "the bench sets the launcher"),
        (["--mode", "job", "--", *TINY, "depth=8,14"], "--mode job runs one job"),
        (["--mode", "job", "--", *TINY_JOB, "trainer.accelerator=tpu"], "unknown trainer.accelerator='tpu'"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2_before_any_job_starts(argv, says, in_tmp, capsys):
    run_dir = in_tmp / "run"
    assert bench(*argv[:2], "--run-dir", str(run_dir), "--out", str(in_tmp / "b.json"), *argv[2:]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reslab bench: error: ") and says in err[0], err
    assert not (in_tmp / "b.json").exists()
    assert not [p for p in run_dir.rglob("*") if p.is_file()]  # nothing ran


def test_a_bad_override_of_the_step_modes_loop_is_one_line(in_tmp, capsys):
    argv = ["--loop-overrides", "trainer.no_such_key=1", "--out", str(in_tmp / "b.json"), "--", *TINY]
    assert bench(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Could not override 'trainer.no_such_key'" in err[0], err


def test_the_step_mode_refuses_a_cuda_graph_without_a_gpu_in_one_line(in_tmp, capsys):
    assert bench("--out", str(in_tmp / "b.json"), "--", *TINY, "runtime.cuda_graph=true") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runtime.cuda_graph=true needs a CUDA GPU" in err[0], err


def test_a_run_folder_that_holds_an_earlier_run_is_refused(in_tmp, capsys):
    (in_tmp / "run" / "job").mkdir(parents=True)
    (in_tmp / "run" / "job" / "metrics.json").write_text("{}")
    assert bench("--mode", "job", "--run-dir", str(in_tmp / "run"), "--", *TINY_JOB) == 2
    assert "job/ holds an earlier run" in capsys.readouterr().err


def test_the_default_run_folder_is_removed_when_the_input_is_refused(in_tmp, monkeypatch, capsys):
    monkeypatch.setenv("TMPDIR", str(in_tmp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads TMPDIR again
    assert bench("--mode", "share", "--", *TINY, "model=plain,resnet") == 2
    assert not list(in_tmp.glob("reslab-bench-*"))


@pytest.mark.slow
def test_share_runs_the_sweep_in_series_and_two_at_a_time_and_divides_the_wall_times(in_tmp, capsys):
    out, run_dir = in_tmp / "bench.json", in_tmp / "run"
    argv = ["--mode", "share", "--jobs", "2", "--run-dir", str(run_dir), "--out", str(out)]
    assert bench(*argv, "--", *TINY_JOB, "model=plain,residual", "runtime.threads=auto") == 0  # tiny's is 1
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    series, parallel = report["series"], report["parallel"]
    assert report["speed_up"] == series["wall_s"] / parallel["wall_s"]
    assert f"speed-up: {report['speed_up']:.2f}x" in printed
    cores = len(os.sched_getaffinity(0))
    for name, run, threads in [("series", series, cores), ("parallel", parallel, max(1, cores // 2))]:
        assert run["wall_s"] > 0 and run["exit_code"] == 0 and not run["failed"] and not run["missing"]
        assert (run["jobs_finished"], run["jobs_expected"]) == (2, 2)
        assert f"{name}: " in printed and "2/2 jobs finished" in printed
        assert sorted(run["jobs"]) == ["plain-8_seed0", "residual-8_seed0"]
        for job, facts in run["jobs"].items():
            record = json.loads((run_dir / name / job / "metrics.json").read_text())
            assert facts["training_s"] == record["wall_time_s"] and facts["steps"] == 8
            assert facts["threads"] == record["threads"] == threads
        assert run["training_s_sum"] == sum(j["training_s"] for j in run["jobs"].values())
    assert "hydra/launcher=joblib" in parallel["command"] and "hydra.launcher.n_jobs=2" in parallel["command"]
    assert not any(a.startswith("hydra/launcher") for a in series["command"])
    assert report["commands"] == [series["command"], parallel["command"]]


@pytest.mark.slow
def test_a_failing_job_is_listed_and_the_bench_exits_1(in_tmp, capsys):
    out = in_tmp / "bench.json"
    # 1000 is more than the tiny preset's 384 training images: that job fails when it loads its data.
    argv = ["--mode", "share", "--jobs", "2", "--skip-series", "--run-dir", str(in_tmp / "run"), "--out", str(out)]
    assert bench(*argv, "--", *TINY_JOB, "model=plain", "dataset.batch_size=32,1000") == 1
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["series"] is None and report["speed_up"] is None and "speed-up" not in printed
    parallel = report["parallel"]
    assert (parallel["jobs_finished"], parallel["jobs_expected"]) == (1, 2)
    (failed,) = parallel["failed"]
    assert (
        failed == "plain-8_seed0_dataset.batch_size=1000" and "fewer than batch_size=1000" in parallel["failed"][failed]
    )
    assert f"  failed: {failed}: " in printed and "1/2 jobs finished" in printed


@pytest.mark.slow
def test_a_schedule_job_that_fails_is_reported_with_its_error_and_exit_1(in_tmp, capsys):
    out = in_tmp / "bench.json"
    argv = ["--mode", "job", "--run-dir", str(in_tmp / "run"), "--out", str(out)]
    assert bench(*argv, "--", *TINY_JOB, "dataset.batch_size=1000") == 1
    report = json.loads(out.read_text())
    assert report["exit_code"] == 2 and report["status"] is None and "fewer than batch_size=1000" in report["error"]
    assert f"result: FAILED ({report['error']})" in capsys.readouterr().out
    assert Path(report["job_dir"]).name == "job"

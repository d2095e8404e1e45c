"""The ``logger`` group and ``curves.csv``: every logger records the same curves, read back through its own reader
(TensorBoard's, pandas-style CSV, MLflow's client); a resumed job continues its file and its MLflow run."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import lightning as L
import numpy as np
import pytest
from conftest import NO_RUN_FIGURES, TINY
from mlflow.tracking import MlflowClient  # reslab[mlflow], in the test extras

from reslab.curves import (
    CURVES_FILE,
    curves_text,
    read_curve_rows,
    read_event_curves,
    rows_to_curves,
)
from reslab.errors import UserError
from reslab.files import MLFLOW_RUN_FILE
from reslab.job import train
from reslab.results.runs import load_run


def last_per_step(rows: list[dict], tag: str) -> dict[int, float]:
    """A CSVLogger column as ``step -> value``, the last row of a step winning (a resumed job appends)."""
    found = {}
    for row in rows:
        if row.get(tag) not in ("", None):
            found[int(row["step"])] = float(row[tag])
    return found


def mlflow_run(job):
    saved = json.loads((job / MLFLOW_RUN_FILE).read_text())
    client = MlflowClient(saved["tracking_uri"])
    return client, client.get_run(saved["run_id"])


def history(client, run_id: str, tag: str) -> dict[int, float]:
    """MLflow's history of a metric, the last value logged at a step winning."""
    found = {}
    for m in sorted(client.get_metric_history(run_id, tag), key=lambda m: m.timestamp):
        found[m.step] = m.value
    return found


def test_curves_csv_round_trips_every_value_and_gap():
    rows = {0: {"train/loss": 2.5, "lr": 0.1}, 7: {"val/error": 0.125, "train/loss": float("nan")}, 9: {}}
    back = read_curve_rows_from_text(curves_text(rows))
    assert back[0] == {"train/loss": 2.5, "lr": 0.1}
    assert back[7]["val/error"] == 0.125 and np.isnan(back[7]["train/loss"])
    curves = rows_to_curves(back)
    assert list(curves["train/loss"][0]) == [0, 7] and "test/error" not in curves


def read_curve_rows_from_text(text, tmp=None):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / CURVES_FILE
        path.write_text(text)
        return read_curve_rows(path)


def test_every_logger_records_the_same_curves(tiny_cfg, tmp_path):
    job = tmp_path / "job"
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    cfg = tiny_cfg("logger=[tensorboard,csv,mlflow]", f"logger.mlflow.tracking_uri={uri}", *NO_RUN_FIGURES, out=job)
    result = train(cfg)

    ours = read_curve_rows(job / CURVES_FILE)
    events = read_event_curves(job)
    with open(job / "csv" / "metrics.csv", newline="") as f:
        lightning_csv = list(csv.DictReader(f))
    client, run = mlflow_run(job)
    for tag in ("train/loss", "train/error", "lr", "val/error", "test/error"):
        mine = {s: v[tag] for s, v in ours.items() if tag in v}
        assert mine, tag
        # TensorBoard keeps float32; curves.csv and the others the float64 logged
        assert mine == pytest.approx(dict(zip(events[tag][0].tolist(), events[tag][1].tolist(), strict=True))), tag
        assert mine == pytest.approx(last_per_step(lightning_csv, tag)), tag
        assert mine == pytest.approx(history(client, run.info.run_id, tag)), tag
    assert ours[max(ours)]["test/error"] == pytest.approx(result["test_error"])
    # The MLflow run is the job: its name, its identity as parameters, reslab's status.
    assert run.info.run_name == "residual-8_seed0" and run.info.status == "FINISHED"
    assert run.data.params["depth"] == "8" and run.data.params["model"] == "residual"
    assert run.data.tags["reslab.status"] == "finished"
    assert not any(k.startswith("views/") for k in run.data.metrics)  # TensorBoard's layout copies stay there


def test_a_resumed_job_continues_its_curves_and_its_mlflow_run(tiny_cfg, tmp_path):
    """Crash at step 7 (last checkpoint at 6), resume: curves.csv is the uninterrupted run's, to the bit, and the
    MLflow run is the same one, FAILED after the crash and FINISHED after the resume, with the same curves."""
    common = ["trainer.max_steps=12", "callbacks.checkpoint.every_n_train_steps=3", *NO_RUN_FIGURES]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    train(tiny_cfg(*common, "logger=[]", out=tmp_path / "straight"))
    cfg = tiny_cfg(*common, "logger=mlflow", f"logger.mlflow.tracking_uri={uri}", out=tmp_path / "resumed")

    class CrashAtStep7(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == 7:
                raise RuntimeError("the machine went away")

    with pytest.raises(RuntimeError):
        train(cfg, callbacks=[CrashAtStep7()])
    client, crashed = mlflow_run(tmp_path / "resumed")
    assert crashed.info.status == "FAILED"
    assert read_curve_rows(tmp_path / "resumed" / CURVES_FILE)  # the rows up to the checkpoint are on disk

    train(cfg)
    straight = (tmp_path / "straight" / CURVES_FILE).read_text()
    assert (tmp_path / "resumed" / CURVES_FILE).read_text() == straight
    client, resumed = mlflow_run(tmp_path / "resumed")
    assert resumed.info.run_id == crashed.info.run_id and resumed.info.status == "FINISHED"
    rows = read_curve_rows(tmp_path / "straight" / CURVES_FILE)
    assert history(client, resumed.info.run_id, "train/error") == {
        s: v["train/error"] for s, v in rows.items() if "train/error" in v
    }
    assert len(client.search_runs([resumed.info.experiment_id])) == 1
    assert not list((tmp_path / "straight").glob("events.out.tfevents.*"))  # logger=[]: none but curves.csv


def test_logger_mlflow_without_its_client_says_how_to_install_it(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    cfg = tiny_cfg("logger=mlflow", f"logger.mlflow.tracking_uri=sqlite:///{tmp_path}/m.db", out=tmp_path / "job")
    with pytest.raises(UserError, match=r"pip install 'reslab\[mlflow\]'"):
        train(cfg)


def test_a_run_written_before_curves_csv_is_read_from_its_event_files(tiny_cfg, tmp_path):
    job = tmp_path / "job"
    train(tiny_cfg(*NO_RUN_FIGURES, out=job))
    from_csv = load_run(job).curves
    (job / CURVES_FILE).unlink()
    from_events = load_run(job).curves
    assert from_csv.keys() == from_events.keys() and "train/error" in from_csv
    for tag, (steps, values) in from_csv.items():
        assert np.array_equal(steps, from_events[tag][0]) and np.allclose(values, from_events[tag][1]), tag


@pytest.mark.slow
def test_a_sweep_logging_to_csv_and_mlflow_from_two_jobs_at_once(tmp_path, run_env):
    """Two jobs start together on one new SQLite store (the lock makes one create its tables); MLflow's own client
    reads both runs back, each job's csv/metrics.csv holds the same curves, and the report reads the curves from
    curves.csv alone (neither logger writes event files)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "reslab", "-m", *TINY, "model=plain,residual", "logger=[csv,mlflow]"]
    cmd += [f"logger.mlflow.tracking_uri={uri}", "logger.mlflow.experiment_name=degradation"]
    cmd += ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}", *NO_RUN_FIGURES]
    proc = subprocess.run(cmd, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("degradation")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["plain-8_seed0", "residual-8_seed0"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    for r in runs:
        job = sweep / r.info.run_name
        assert not list(job.glob("events.out.tfevents.*"))
        curves = load_run(job).curves
        expected = dict(zip(curves["val/error"][0].tolist(), curves["val/error"][1].tolist(), strict=True))
        assert history(client, r.info.run_id, "val/error") == expected
        with open(job / "csv" / "metrics.csv", newline="") as f:
            assert last_per_step(list(csv.DictReader(f)), "val/error") == pytest.approx(expected)
    assert (sweep / "figures" / "error_curves.png").exists()


def test_curves_csv_is_rewritten_at_checkpoints_and_at_the_end_not_per_call(tmp_path):
    from reslab.training.loggers import CurveLog

    log = CurveLog(tmp_path, flush_seconds=3600)
    for step in range(5):
        log.log_metrics({"train/loss": 1.0 + step, "epoch": 0.0}, step=step)
    assert not (tmp_path / CURVES_FILE).exists()  # nothing yet: no checkpoint, no time passed
    log.after_save_checkpoint(None)
    assert sorted(read_curve_rows(tmp_path / CURVES_FILE)) == [0, 1, 2, 3, 4]
    log.log_metrics({"train/loss": 9.0}, step=5)
    log.finalize("success")
    assert read_curve_rows(tmp_path / CURVES_FILE)[5] == {"train/loss": 9.0}
    often = CurveLog(tmp_path / "often", flush_seconds=0)
    (tmp_path / "often").mkdir()
    often.log_metrics({"lr": 0.1}, step=0)
    assert read_curve_rows(tmp_path / "often" / CURVES_FILE) == {0: {"lr": 0.1}}

"""What a user sees in TensorBoard, read from a real TensorBoard server on loopback over its HTTP API, on a tiny
sweep made as the explain study's was: one launch sweeping the arm with batch norm, a second into the same folder
with `model.norm=none model.zero_init_residual=true` fixed at launch (so not in the job's name), and one run whose
event files carry a session written by older code. The HParams table lists what separates the runs (norm and
zero-init included, speed settings not) as differing; each run shows the report's session; the error charts sort
before the custom-scalar copies; no stray run; final errors at the last step; no epoch scalar."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import NO_RUN_FIGURES, TINY

from reslab.config import compose_config
from reslab.job import train
from reslab.record import RunRecord
from reslab.results.report import report
from reslab.tensorboard_views import session_summaries, tensorboard_link

BATCH = "plain-8_seed0_model.norm=batch"  # swept: the norm is in the name
NO_NORM = "residual-8_seed0"  # launch-fixed: not in the name
OLD = "residual-8_seed1"  # its event files carry a session of the older kind


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _old_session(job_dir: Path) -> None:
    """What reslab wrote before this report: the job's own session (speed settings, no norm) in its event files,
    here beside a scalar in one event (the mixed case) and a scalar of its own, which an upgrade must keep."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(job_dir))
    start, end = session_summaries({"model": "residual", "depth": 8, "channels_last": True, "compile": "off"})
    mixed = Summary(value=[Summary.Value(tag="old/mixed", simple_value=0.25), *start.value])
    for step, summary in enumerate((mixed, end, Summary(value=[Summary.Value(tag="old/alone", simple_value=0.5)]))):
        writer.add_event(Event(summary=summary, wall_time=time.time(), step=step))
    writer.close()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tensorboard")
    for overrides in (
        ["model=plain", "model.norm=batch", "sweep_keys=[model,model.norm]"],
        ["model=residual", "model.norm=none", "model.zero_init_residual=true", "sweep_keys=[model]"],
        ["model=residual", "model.norm=none", "model.zero_init_residual=true", "seed=1", "sweep_keys=[model,seed]"],
    ):
        cfg = compose_config([*TINY, *NO_RUN_FIGURES, *overrides])
        cfg.output_dir = str(root / RunRecord.from_config(cfg).job_dir_name)
        if cfg.output_dir.endswith(OLD):  # in the run's first event file, as the job wrote it then
            Path(cfg.output_dir).mkdir()
            _old_session(Path(cfg.output_dir))
        train(cfg)
    assert sorted(p.name for p in root.iterdir()) == [BATCH, NO_NORM, OLD]
    return root


@pytest.fixture(scope="module")
def tensorboard(sweep):
    report(sweep, figures=False, quiet=True)  # writes the sessions, the experiment and the layout
    port = _free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(sweep), "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--load_fast", "false", "--reload_interval", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 90
        while time.monotonic() < end:  # until the server answers and has read every run
            try:
                if {BATCH, NO_NORM, OLD} <= set(_get(f"{base}/data/runs")):
                    tags = _get(f"{base}/data/plugin/scalars/tags")
                    experiment = _get(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
                    names = {h["name"] for h in experiment.get("hparamInfos", [])}
                    if (
                        all("final/test_error" in tags.get(r, {}) for r in (BATCH, NO_NORM, OLD))
                        and "model.norm" in names
                    ):
                        break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("TensorBoard did not serve the sweep")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _session_groups(base: str, columns: list[str]) -> list[dict]:
    body = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [{"hparam": c} for c in columns],
        "startIndex": 0,
        "sliceSize": 100,
    }
    return _get(f"{base}/data/plugin/hparams/session_groups", body)["sessionGroups"]


@pytest.mark.slow
def test_hparams_lists_what_separates_the_runs_first_and_no_speed_settings(tensorboard, sweep):
    experiment = _get(f"{tensorboard}/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {h["name"]: h for h in experiment["hparamInfos"]}
    differing = [h["name"] for h in experiment["hparamInfos"] if h.get("differs")]
    # A launch-fixed norm and zero-init differ between the folder's runs: shown as such, and first.
    assert {"model", "seed", "shortcut", "model.norm", "model.zero_init_residual"} <= set(differing)
    assert [h["name"] for h in experiment["hparamInfos"]][: len(differing)] == differing  # TensorBoard's order
    assert infos["model.norm"]["domainDiscrete"] == ["batch", "none"]
    assert infos["model.zero_init_residual"]["type"] == "DATA_TYPE_BOOL"  # a flag, not 1.0000
    assert infos["depth"]["type"] == "DATA_TYPE_FLOAT64" and not infos["depth"].get("differs")
    assert infos["schedule.milestones"]["domainDiscrete"] == ["[0.5, 0.75]"]  # a list, as text
    assert not any(re.search(r"channels_last|compile|cuda_graph|runtime|_target_", name) for name in infos)
    assert [m["name"]["tag"] for m in experiment["metricInfos"]] == [
        "final/train_error",
        "final/val_error",
        "final/test_error",
    ]

    groups = _session_groups(tensorboard, ["model", "seed", "model.norm", "model.zero_init_residual"])
    rows = {
        tuple(g["hparams"].get(k) for k in ("model", "seed", "model.norm", "model.zero_init_residual")): g
        for g in groups
    }
    assert set(rows) == {
        ("plain", 0.0, "batch", False),
        ("residual", 0.0, "none", True),
        ("residual", 1.0, "none", True),
    }
    # The run written by older code (OLD, seed 1) shows the report's session, not its own (no norm): in the set above.
    record = json.loads((sweep / NO_NORM / "metrics.json").read_text())
    metrics = {m["name"]["tag"]: m for m in rows[("residual", 0.0, "none", True)]["metricValues"]}
    assert metrics["final/test_error"]["value"] == pytest.approx(record["test_error"], abs=1e-6)
    assert metrics["final/test_error"]["trainingStep"] == record["steps"]  # at the last step, not at 0


@pytest.mark.slow
def test_no_stray_run_error_charts_before_the_copies_and_the_layout_charts_by_depth_and_arm(tensorboard):
    assert sorted(_get(f"{tensorboard}/data/runs")) == sorted([BATCH, NO_NORM, OLD])  # no "." at the sweep's root
    tags = _get(f"{tensorboard}/data/plugin/scalars/tags")
    assert tags and not any("epoch" in run_tags for run_tags in tags.values())
    final = _get(f"{tensorboard}/data/plugin/scalars/scalars?run={NO_NORM}&tag=final/test_error")
    assert [step for _, step, _ in final] == [8]
    ours = tags[BATCH]
    assert {"views/by_depth/8/train_error", "views/by_depth/8/val_error", "views/by_arm/plain/grad_norm_first"} <= set(
        ours
    )
    # TensorBoard groups charts by the tag's first part, in sorted order: the copies come after train/, val/, test/.
    groups = sorted({tag.split("/")[0] for tag in ours})
    assert groups.index("views") > max(groups.index(g) for g in ("train", "val", "test"))
    layout = _get(f"{tensorboard}/data/plugin/custom_scalars/layout")
    charts = {c["title"]: c for cat in layout["category"] for c in cat["chart"]}
    assert "depth 8: training and validation error" in charts
    assert charts["plain: gradient L2 norm"]["multiline"]["tag"] == [
        "(views/)?by_arm/plain/grad_norm_(first|middle|last)"
    ]
    assert "runColorGroup=regex:" in tensorboard_link() and "tagFilter=^(train|val|test)/" in tensorboard_link()


def test_a_report_upgrades_an_older_run_once_and_replaces_its_own_files(analysis_sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _old_session(analysis_sweep / "plain-8_seed0")
    scalars = EventAccumulator(str(analysis_sweep / "plain-8_seed0"), size_guidance={"scalars": 0}).Reload()
    before = {t: [(e.step, e.value) for e in scalars.Scalars(t)] for t in scalars.Tags()["scalars"]}
    assert {"old/mixed", "old/alone", "train/error"} <= set(before)
    report(analysis_sweep, figures=False, quiet=True)
    scalars = EventAccumulator(str(analysis_sweep / "plain-8_seed0"), size_guidance={"scalars": 0}).Reload()
    after = {t: [(e.step, e.value) for e in scalars.Scalars(t)] for t in scalars.Tags()["scalars"]}
    assert after == before  # every scalar kept, the one that shared an event with the old session included
    own = {
        p: p.read_bytes()
        for p in analysis_sweep.glob("*/events.out.tfevents.*")
        if not p.name.endswith((".reslab-session", ".reslab-sweep"))
    }
    assert not any(b"_hparams_/" in data for data in own.values())  # the older session is gone from its files
    report(analysis_sweep, figures=False, quiet=True)
    runs = {p.parent.name for p in own}  # the runs that trained (the failed job has no events, so no session)
    assert len(list(analysis_sweep.glob("*/events.out.tfevents.*.reslab-sweep"))) == 1
    assert {p.parent.name for p in analysis_sweep.glob("*/events.out.tfevents.*.reslab-session")} == runs
    assert not list(analysis_sweep.glob("events.out.tfevents.*"))  # nothing at the root: no stray "." run
    assert {p: p.read_bytes() for p in own} == own  # upgraded by the first report, then left alone


def test_a_hyperparameter_that_is_a_number_in_one_run_and_none_in_another_is_text_in_both():
    """schedule=step,step_warmup: schedule.warmup.until_error is None in one arm and 0.8 in the other. The
    experiment and every session must agree on its kind, or TensorBoard's column filter drops runs."""
    from tensorboard.plugins.hparams import api_pb2, metadata

    from reslab.tensorboard_views import _same_kind, experiment_summary

    sessions = [{"until_error": None, "depth": 8, "flag": True}, {"until_error": 0.8, "depth": 20, "flag": False}]
    assert _same_kind(sessions) == [
        {"until_error": "none", "depth": 8, "flag": True},
        {"until_error": "0.8", "depth": 20, "flag": False},
    ]
    summary = experiment_summary(sessions)
    infos = metadata.parse_experiment_plugin_data(summary.value[0].metadata.plugin_data.content).hparam_infos
    kinds = {h.name: (h.type, [v for v in h.domain_discrete]) for h in infos}
    assert kinds == {
        "until_error": (api_pb2.DATA_TYPE_STRING, ["0.8", "none"]),
        "depth": (api_pb2.DATA_TYPE_FLOAT64, [8.0, 20.0]),
        "flag": (api_pb2.DATA_TYPE_BOOL, [False, True]),
    }

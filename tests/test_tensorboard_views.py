"""What a user sees in TensorBoard, read from a real TensorBoard server on loopback over its HTTP API, on a tiny
sweep: the HParams table with the sweep's hyperparameters (those that vary marked as such) against the final
errors, values of their own kind, final errors at the last step, no epoch scalar, and the custom-scalar layout."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from reslab.results.report import report


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")  # one server for the tests below
def tensorboard(tiny_sweep):
    report(tiny_sweep, figures=False, quiet=True)  # writes the sweep's experiment and layout
    port = _free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(tiny_sweep), "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--load_fast", "false", "--reload_interval", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 90
        while time.monotonic() < end:  # until the server answers and has read every finished run
            try:
                if {"plain-8_seed0", "residual-14_seed0"} <= set(_get(f"{base}/data/runs")):
                    tags = _get(f"{base}/data/plugin/scalars/tags")
                    if all("final/test_error" in tags.get(r, {}) for r in ("plain-8_seed0", "residual-14_seed0")):
                        break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("TensorBoard did not serve the sweep")
        yield base, tiny_sweep
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_tensorboard_opens_on_the_sweeps_hyperparameters_and_final_errors(tensorboard):
    tensorboard, sweep = tensorboard
    experiment = _get(f"{tensorboard}/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {h["name"]: h for h in experiment["hparamInfos"]}
    for varying in ("model", "shortcut", "depth", "seed", "params"):  # what the sweep varies is shown as such
        assert infos[varying].get("differs") is True, varying
    assert not infos["dataset"].get("differs") and not infos["batch_size"].get("differs")
    assert infos["channels_last"]["type"] == "DATA_TYPE_BOOL"  # a flag, not 1.0000
    assert infos["compile"]["domainDiscrete"] == ["off"]  # not "None"
    assert infos["model"]["type"] == "DATA_TYPE_STRING" and infos["depth"]["type"] == "DATA_TYPE_FLOAT64"
    assert [m["name"]["tag"] for m in experiment["metricInfos"]] == [
        "final/train_error",
        "final/val_error",
        "final/test_error",
    ]

    groups = _get(
        f"{tensorboard}/data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [{"hparam": "model"}, {"hparam": "depth"}, {"hparam": "seed"}, {"hparam": "variant"}],
            "startIndex": 0,
            "sliceSize": 100,
        },
    )["sessionGroups"]
    rows = {tuple(g["hparams"][k] for k in ("model", "depth", "seed", "variant")): g for g in groups}
    assert ("plain", 8.0, 0.0, "-") in rows and ("residual", 14.0, 0.0, "-") in rows
    assert ("plain", 8.0, 0.0, "optim.lr=0.05") in rows  # the other experiment of the same arm, apart
    record = json.loads((sweep / "plain-8_seed0" / "metrics.json").read_text())
    metrics = {m["name"]["tag"]: m for m in rows[("plain", 8.0, 0.0, "-")]["metricValues"]}
    assert metrics["final/test_error"]["value"] == pytest.approx(record["test_error"], abs=1e-6)
    assert metrics["final/test_error"]["trainingStep"] == record["steps"]  # at the last step, not at 0


def test_scalars_have_no_epoch_and_the_layout_groups_depths_and_arms(tensorboard):
    tensorboard, _ = tensorboard
    tags = _get(f"{tensorboard}/data/plugin/scalars/tags")
    assert tags and not any("epoch" in run_tags for run_tags in tags.values())
    final = _get(f"{tensorboard}/data/plugin/scalars/scalars?run=plain-8_seed0&tag=final/test_error")
    assert [step for _, step, _ in final] == [8]
    assert {"by_depth/8/train_error", "by_depth/8/val_error", "by_arm/plain/grad_norm_first"} <= set(
        tags["plain-8_seed0"]
    )
    layout = _get(f"{tensorboard}/data/plugin/custom_scalars/layout")
    charts = {c["title"]: c for cat in layout["category"] for c in cat["chart"]}
    assert "depth 8: training and validation error" in charts and "depth 14: training and validation error" in charts
    assert charts["plain: gradient L2 norm"]["multiline"]["tag"] == ["by_arm/plain/grad_norm_(first|middle|last)"]
    images = _get(f"{tensorboard}/data/plugin/images/tags")
    assert "figures/grad_norm_vs_layer" in images["plain-8_seed0"]

"""Chaos (tools/chaos.py): seeded random faults across whole tiny sweeps under the basic, joblib and submitit_local
launchers and across an Optuna search, the contract checked after every launch and the results compared with an
undisturbed sweep's at the end.

The slow tier runs ``RESLAB_CHAOS_FAULTS`` faults per launcher (default below) from seed ``RESLAB_CHAOS_SEED``; the
seed and the fault list are printed. A seed reproduces its schedule (which faults, in which launches, at which
offsets); where a fault lands depends on the machine's timing, so a failure names the launch's log to read.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
from conftest import ROOT

SEED = int(os.environ.get("RESLAB_CHAOS_SEED", "0"))
FAULTS = int(os.environ.get("RESLAB_CHAOS_FAULTS", "4"))  # per launcher; the script runs more (tools/chaos.py)


def harness():
    spec = importlib.util.spec_from_file_location("chaos", ROOT / "tools" / "chaos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_schedule_is_seeded_and_takes_every_kind_in_turn():
    chaos = harness()
    plan = chaos.schedule(3, 40, ["basic", "joblib"], can_fill_disk=False)
    assert plan == chaos.schedule(3, 40, ["basic", "joblib"], can_fill_disk=False)
    assert plan != chaos.schedule(4, 40, ["basic", "joblib"], can_fill_disk=False)
    basic = [f for r in plan["basic"] for f in r]
    joblib = [f for r in plan["joblib"] for f in r]
    assert len(basic) == len(joblib) == 20 and all(len(r) <= 8 for r in plan["basic"])
    assert not any("worker" in f for f in basic) and any("worker" in f for f in joblib)  # basic has no worker
    assert "disk full" not in basic + joblib  # only where a small filesystem could be mounted
    kinds = chaos.kinds_for("joblib", can_fill_disk=False)
    assert set(joblib[: len(kinds)]) == set(kinds)  # every kind once before any twice


# What a launch's stderr ended with after the harness killed loky's resource tracker (seed 4, 100 faults).
LOKY_TRACKER = """\
[2026-12-03 08:21:05,135][HYDRA] Joblib.Parallel(...) is launching 12 jobs
/venv/site-packages/joblib/externals/loky/backend/stdlib_py314_resource_tracker.py:235: \
UserWarning: resource_tracker: process died unexpectedly, relaunching.  Some resources might leak.
  warnings.warn('resource_tracker: process died unexpectedly, '
Traceback (most recent call last):
  File "/venv/site-packages/joblib/externals/loky/backend/resource_tracker.py", line 386, in main
    del cache[rtype][name]
        ~~~~~~~~~~~~^^^^^^
KeyError: '/loky-20173-l5blcs59'"""


def test_loky_s_relaunched_tracker_is_told_apart_from_the_command_s_own_traceback():
    chaos = harness()
    assert chaos.loky_tracker_noise(LOKY_TRACKER.splitlines())
    own = ["Traceback (most recent call last):", '  File "/checkout/src/reslab/cli/__init__.py", line 9, in main',
           "KeyError: 'x'"]  # fmt: skip
    assert not chaos.loky_tracker_noise([*LOKY_TRACKER.splitlines(), *own])  # the last traceback is the command's
    assert not chaos.loky_tracker_noise(LOKY_TRACKER.splitlines()[3:])  # no relaunch: the tracker's own failure


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local", "search"])
def test_random_faults_keep_the_contract(launcher, tmp_path, run_env, monkeypatch):
    for key, value in run_env.items():
        monkeypatch.setenv(key, value)
    chaos = harness()
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    result = chaos.run(SEED, FAULTS, [launcher], tmp_path, log=log)
    delivered = sum(result.counts.values())
    report = "\n".join(lines + [f"violation: {v}" for v in result.violations])
    assert not result.violations, report
    assert delivered == FAULTS, report

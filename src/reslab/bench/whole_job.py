"""``reslab bench --mode job``: one real reslab job, launched as a user launches it, timed from launch to exit.

The job is ``python -m reslab experiment=paper depth=56 model=residual [overrides]`` (the paper's 64k-iteration
ResNet-56 schedule, with validation and checkpoints as the preset sets them) in its own process; its numbers are
read back from its ``metrics.json`` and ``config.yaml``. ``--project-steps N`` adds the time N steps would take at
the measured rate, labelled as projected. Also the helpers that ``--mode share`` uses: the device line, checking a
command's overrides before it runs, running it timed, and reading a job's record.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf

from reslab.bench.flops import TRAIN_FLOP_PER_MAC, macs_per_image
from reslab.bench.peak import Peak, theoretical_peak
from reslab.build import build_net
from reslab.config import compose_config, parse_overrides
from reslab.data.registry import dataset_info
from reslab.errors import UserError
from reslab.overrides import composition_error, preflight, sweep_values
from reslab.record import cpu_model, machine, read_metrics
from reslab.schema import check_values
from reslab.training.accelerator import resolve_accelerator, resolve_precision

DEFAULTS = ["experiment=paper", "depth=56", "model=residual"]
SYNTHETIC = "synthetic, CIFAR-shaped: errors mean nothing"


def with_defaults(defaults: list[str], overrides: list[str]) -> list[str]:
    """The defaults whose key the user does not set, then the user's overrides (``depth=20`` replaces ``depth=56``)."""
    for o in overrides:
        if o.startswith("-"):
            raise UserError(f"{o}: the bench runs the job itself; give only key=value overrides after --")
    given = {o.key_or_group for o in parse_overrides(overrides)}
    return [d for d in defaults if d.split("=", 1)[0] not in given] + list(overrides)


def hydra_path(path: Path) -> str:
    """A path as a Hydra override value: quoted where it holds characters the override grammar reads (``,`` would
    make it a sweep)."""
    text = str(path)
    return text if re.fullmatch(r"[\w./-]+", text) else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fresh_run_dir(run_dir: Path | None, parts: list[str]) -> tuple[Path, bool]:
    """``--run-dir`` (absolute), or a new temporary folder, and whether the bench made it; refused where a folder
    the bench writes holds files already: a rerun would find its jobs finished and time nothing."""
    if run_dir is None:
        return Path(tempfile.mkdtemp(prefix="reslab-bench-")), True
    run_dir = run_dir.resolve()
    for part in parts:
        if (run_dir / part).exists() and any((run_dir / part).iterdir()):
            raise UserError(f"--run-dir {run_dir}: {part}/ holds an earlier run; give a new or empty folder")
    return run_dir, False


def first_values(overrides: list[str]) -> list[str]:
    """The overrides with every swept key at its first value: the config of a sweep's first job."""
    out = []
    for o in parse_overrides(overrides):
        value = sweep_values(o)[0] if o.is_sweep_override() else o.get_value_element_as_str()
        out.append(f"{o.get_key_element()}={value}")
    return out


def checked_config(argv: list[str], made: Path | None = None) -> DictConfig:
    """Refuse, in one line, what the job's own command would refuse (unknown options and keys, wrong types, values
    out of range, for every value of a sweep), then compose the first job's config to read the device from. A
    refusal removes ``made``, the run folder the bench made for this command."""
    try:
        preflight(argv)
        overrides = [a for a in argv if a != "-m" and not a.startswith("hydra")]
        try:
            cfg = compose_config(first_values(overrides), output_dir=tempfile.gettempdir())
        except ConfigCompositionException as e:
            raise UserError(composition_error(e)) from None
        check_values(cfg)
        resolve_precision(cfg.runtime.precision, resolve_accelerator(cfg.trainer.accelerator))
    except UserError:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
    return cfg


def device_header(cfg: DictConfig, fma_units: int | None, clock_ghz: float | None) -> tuple[dict, Peak]:
    """Print the device's name, the precision and its theoretical peak; return the machine and the peak."""
    accelerator = resolve_accelerator(cfg.trainer.accelerator)
    precision = resolve_precision(cfg.runtime.precision, accelerator)
    if accelerator == "gpu":
        name = torch.cuda.get_device_name()
    else:
        name = f"{cpu_model() or 'CPU'}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads"
    peak = theoretical_peak(precision, accelerator, fma_units, clock_ghz)
    about = {**machine(), "torch_threads": torch.get_num_threads(), "device": name, "accelerator": accelerator}
    about["precision"] = precision
    print(f"device: {accelerator}: {name}; precision {precision}")
    print(f"peak: {peak.derivation}", flush=True)
    return about, peak


def run_command(cmd: list[str], log: Path, echo: bool) -> tuple[int, float]:
    """Run ``cmd``, its output into ``log`` (and to this stdout with ``echo``); its exit status and its seconds
    from launch to exit."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the job's progress lines as they happen, not in blocks
    start = time.perf_counter()
    with (
        log.open("w") as f,
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc,
    ):
        for line in proc.stdout:
            f.write(line)
            if echo:
                print(line, end="", flush=True)
    return proc.returncode, time.perf_counter() - start


def last_line(log: Path) -> str:
    """The last line a command printed: its error where it ended on one."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def read_job(job_dir: Path) -> tuple[dict | None, DictConfig | None]:
    """The job's ``metrics.json`` and ``config.yaml``, None for either it did not write."""
    config = job_dir / "config.yaml"
    return read_metrics(job_dir), OmegaConf.load(config) if config.is_file() else None


def train_flop(record: dict, cfg: DictConfig) -> float:
    """FLOPs of the job's training steps: 6 per multiply-add, per image, per step (as step mode counts them)."""
    info = dataset_info(cfg.dataset.name)
    net = build_net(cfg, info.in_channels, info.num_classes)
    size = record["image_size"]
    macs = macs_per_image(net, (info.in_channels, size, size))
    return TRAIN_FLOP_PER_MAC * macs * cfg.dataset.batch_size * record["steps"]


def duration(seconds: float) -> str:
    """``4821.3 s (1 h 20 min)``: seconds, and hours and minutes where there are many."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{seconds:.0f} s ({minutes} min)"
    return f"{seconds:.0f} s ({minutes // 60} h {minutes % 60} min)"


def outcome(code: int, record: dict | None, log: Path) -> str | None:
    """None for a job that finished; else what went wrong, in one line."""
    if record is not None and code == 0 and record.get("status") == "finished":
        return None
    if record is None:
        return f"exit code {code}, no metrics.json: {last_line(log)}"
    why = record.get("error") or ""
    if record.get("status") == "diverged":
        why = f"diverged at step {record.get('diverged_at_step')}"
    return f"exit code {code}, status {record.get('status')}" + (f": {why}" if why else "")


def main(args: argparse.Namespace) -> int:
    if args.project_steps is not None and args.project_steps < 1:
        raise UserError(f"--project-steps={args.project_steps} must be at least 1")
    if sweeps := [o.input_line for o in parse_overrides(args.overrides) if o.is_sweep_override()]:
        raise UserError(f"{sweeps[0]} lists several values: --mode job runs one job (--mode share runs a sweep)")
    overrides = with_defaults(DEFAULTS, args.overrides)
    run_dir, made = fresh_run_dir(args.run_dir, ["job"])
    job_dir = run_dir / "job"
    cmd = [sys.executable, "-m", "reslab", *overrides, f"hydra.run.dir={hydra_path(job_dir)}"]
    cfg = checked_config(cmd[3:], run_dir if made else None)
    about, peak = device_header(cfg, args.fma_units, args.cpu_clock_ghz)
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"run dir: {run_dir} (tensorboard --logdir {run_dir}); the job's output: {run_dir / 'job.log'}")
    print(f"running: {shlex.join(cmd)}", flush=True)
    code, wall = run_command(cmd, run_dir / "job.log", echo=True)
    record, job_cfg = read_job(job_dir)
    failure = outcome(code, record, run_dir / "job.log")
    result = {"exit_code": code, "wall_s": wall, "status": record.get("status") if record else None, "error": failure}
    if record is not None and job_cfg is not None and record.get("steps"):
        result |= measured(record, job_cfg, wall, peak, args.project_steps)
    report = {
        "mode": "job",
        "machine": about,
        "peak": peak.as_dict(),
        "peak_gflop_s": peak.gflop_s,
        "commands": [cmd],
        "run_dir": str(run_dir),
        "job_dir": str(job_dir),
        **result,
    }
    print_result(result, wall, job_dir)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 1 if failure else 0


def measured(record: dict, cfg: DictConfig, wall: float, peak: Peak, project_steps: int | None) -> dict:
    """The job's numbers: steps, times, rate, errors, FLOP rate, and the projection to ``project_steps``."""
    steps, training = record["steps"], record["wall_time_s"]
    rate = steps / training
    gflop_s = train_flop(record, cfg) / training / 1e9
    out = {
        "dataset": cfg.dataset.name,
        "precision": record.get("precision"),
        "steps": steps,
        "max_steps": cfg.trainer.max_steps,
        "training_s": training,
        "steps_per_s": rate,
        "test_error": record.get("test_error"),
        "val_error": record.get("val_error"),
        "gflop_s": gflop_s,
        "fraction_of_peak": gflop_s / peak.gflop_s if peak.gflop_s else None,
        "projection": None,
    }
    if project_steps is not None:
        # The time outside training (start-up, imports, data loading) is paid once, whatever the length of the run.
        out["projection"] = {
            "steps": project_steps,
            "training_s": project_steps / rate,
            "launch_to_exit_s": max(0.0, wall - training) + project_steps / rate,
            "basis": f"projected from {steps} steps at {rate:.2f} steps/s, not run; only the validations "
            "of those steps are in the rate",
        }
    return out


def print_result(result: dict, wall: float, job_dir: Path) -> None:
    if result["error"]:
        print(f"result: FAILED ({result['error']})")
    else:
        print("result: finished")
    if "steps" not in result:
        print(f"  launch -> exit     {duration(wall)}")
        return
    dataset = SYNTHETIC if result["dataset"] == "synthetic" else result["dataset"]
    rows = [
        ("dataset", dataset),
        ("precision", result["precision"]),
        ("steps", f"{result['steps']} of {result['max_steps']}"),
        ("launch -> exit", duration(wall)),
        ("training", f"{duration(result['training_s'])} (metrics.json wall_time_s: fit, validation, test)"),
        ("rate", f"{result['steps_per_s']:.2f} steps/s"),
        ("FLOP rate", f"{result['gflop_s']:.1f} GFLOP/s" + of_peak(result["fraction_of_peak"])),
        ("test error", number(result["test_error"])),
        ("val error", number(result["val_error"])),
    ]
    if p := result["projection"]:
        rows.append(
            (
                f"projected {p['steps']}",
                f"{duration(p['training_s'])} training, "
                f"{duration(p['launch_to_exit_s'])} launch -> exit ({p['basis']})",
            )
        )
    rows.append(("job dir", str(job_dir)))
    for name, value in rows:
        print(f"  {name:<18} {value}")


def of_peak(fraction: float | None) -> str:
    return f" ({fraction:.2%} of the theoretical peak)" if fraction is not None else " (no theoretical peak)"


def number(value: float | None) -> str:
    return f"{value:.4f}" if value is not None and math.isfinite(value) else "-"

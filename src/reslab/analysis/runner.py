"""One analysis over a finished run or every finished run of a sweep (``reslab analyze KIND DIR``, whose command
line is `reslab.cli.analyze`).

For each run the analysis's arrays go to ``<job>/analysis/<kind>.npz`` with the settings that made them
(``<kind>.json``), reused on the next call with the same settings (``--force`` measures again), and to TensorBoard
as scalars in the job's own event files (x: the position the analysis varies, e.g. the deleted block). The
comparison figure (PNG and PDF), a markdown summary with the command, the machine and the key numbers, and the
figure as a TensorBoard image go to ``<DIR>/analysis/``; ``reslab report`` adds what it finds there to the report.

Each analysis module (`reslab.analysis.KINDS`) provides the functions of `Analysis`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from reslab.analysis import KINDS
from reslab.analysis.trained import TrainedRun, load_trained
from reslab.errors import UserError
from reslab.files import write_atomic, write_json_atomic, write_text_atomic
from reslab.plots.measured import Measured

TB_SUFFIX = ".reslab-analysis-{kind}"  # each analysis's own event file, replaced when it runs again


class Analysis(Protocol):
    TITLE: str

    def add_options(self, parser: argparse.ArgumentParser) -> None: ...
    def settings(self, args: argparse.Namespace) -> dict: ...  # JSON; what the arrays depend on besides the run
    def needs(self, trained: TrainedRun) -> str | None: ...  # why this run does not suit the analysis, or None
    def measure(self, trained: TrainedRun, settings: dict) -> dict[str, np.ndarray]: ...
    def scalars(self, arrays: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]: ...


class Drawing(Protocol):
    def figure(self, results: list[Measured], settings: dict): ...  # a matplotlib Figure
    def summary(self, results: list[Measured], settings: dict) -> list[str]: ...  # markdown lines, the key numbers


def analysis_module(kind: str) -> Analysis:
    return importlib.import_module(KINDS[kind][0])  # type: ignore[return-value]


def drawing_module(kind: str) -> Drawing:
    return importlib.import_module(f"reslab.plots.{kind}")  # type: ignore[return-value]


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu (or auto)")
    return device


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def measure_cached(module: Analysis, kind: str, trained: TrainedRun, settings: dict, force: bool) -> dict:
    """The run's arrays: from ``<job>/analysis/<kind>.npz`` if made with the same settings from the same
    checkpoint, else measured now and saved there."""
    out = trained.path / "analysis"
    meta_path, arrays_path = out / f"{kind}.json", out / f"{kind}.npz"
    # The weights' step; an analysis of fresh nets (signal) reads the record's, the run may keep no checkpoint.
    step = trained.step if getattr(module, "USES_WEIGHTS", True) else int(trained.run.record.get("steps") or 0)
    key = {"settings": settings, "checkpoint_step": step, "identity": trained.run.record.get("identity")}
    if not force and meta_path.is_file() and arrays_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            if {k: meta.get(k) for k in key} == json.loads(json.dumps(key)):
                with np.load(arrays_path) as data:
                    return {k: data[k] for k in data.files}
        except (OSError, ValueError):
            pass  # unreadable: measure again
    trained.check_data()
    start = time.perf_counter()
    arrays = {k: np.asarray(v) for k, v in module.measure(trained, settings).items()}
    seconds = time.perf_counter() - start
    out.mkdir(exist_ok=True)
    write_atomic(arrays_path, lambda f: np.savez(f, **arrays))
    write_json_atomic(meta_path, {**key, "seconds": round(seconds, 2), "device": device_name(trained.device.type)})
    return arrays


def write_run_scalars(kind: str, trained: TrainedRun, scalars: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """The run's curves, in an event file of its own in the job directory (TensorBoard merges a folder's files)."""
    from torch.utils.tensorboard import SummaryWriter

    suffix = TB_SUFFIX.format(kind=kind)
    for old in trained.path.glob(f"events.out.tfevents.*{suffix}"):
        old.unlink(missing_ok=True)
    writer = SummaryWriter(str(trained.path), filename_suffix=suffix)
    try:
        for tag, (steps, values) in scalars.items():
            for s, v in zip(steps, values):
                if np.isfinite(v):
                    writer.add_scalar(tag, float(v), int(s))
    finally:
        writer.close()


def write_figure_image(kind: str, folder: Path, fig) -> None:
    """The comparison figure as a TensorBoard image in ``folder``'s own analysis event file."""
    from torch.utils.tensorboard import SummaryWriter

    suffix = TB_SUFFIX.format(kind=kind) + "-figure"
    for old in folder.glob(f"events.out.tfevents.*{suffix}"):
        old.unlink(missing_ok=True)
    writer = SummaryWriter(str(folder), filename_suffix=suffix)
    try:
        writer.add_figure(f"analysis/{kind}", fig, 0, close=False)
    finally:
        writer.close()


def summary_markdown(
    kind: str, module: Analysis, lines: list[str], settings: dict, device: str, argv: list[str]
) -> str:
    command = shlex.join(["reslab", "analyze", kind, *argv])
    shown = ", ".join(f"{k}={v}" for k, v in settings.items())
    return (
        f"### {module.TITLE}\n\n"
        f"`{command}` ({shown}; fp32, {getattr(module, 'BN_MODE', 'BN in evaluation mode')}; "
        f"{device_name(device)}, torch {torch.__version__})\n\n"
        + "\n".join(lines)
        + f"\n\n![{kind}](analysis/{kind}.png)\n"
    )


def run_analysis(kind: str, args: argparse.Namespace, argv: list[str]) -> int:
    import matplotlib

    matplotlib.use("Agg", force=False)
    module = analysis_module(kind)
    device = resolve_device(args.device)
    settings = module.settings(args)
    weights = getattr(module, "USES_WEIGHTS", True)  # signal builds fresh nets: no checkpoint needed
    trained, skipped, single = load_trained(args.dir, args.data_dir, device, needs=module.needs, weights=weights)
    results = []
    for t in trained:
        arrays = measure_cached(module, kind, t, settings, args.force)
        write_run_scalars(kind, t, module.scalars(arrays))
        results.append(Measured(t.label, t.shortcut, t.depth, t.seed, t.path.name, arrays))
        print(f"{kind}: {t.path.name} done", file=sys.stderr, flush=True)
    folder = trained[0].path if single else Path(args.dir)
    out = folder / "analysis"
    out.mkdir(exist_ok=True)
    drawing = drawing_module(kind)
    fig = drawing.figure(results, settings)
    for ext in ("png", "pdf"):
        write_atomic(out / f"{kind}.{ext}", lambda f, ext=ext: fig.savefig(f, format=ext, dpi=200))
    write_figure_image(kind, folder, fig)
    lines = drawing.summary(results, settings)
    if skipped:
        # Each reason without its advice (the part after "; "), which the summary does not need.
        lines.append("- Left out:\n" + "\n".join(f"  - {reason.split('; ')[0]}" for reason in skipped))
    write_text_atomic(out / f"{kind}.md", summary_markdown(kind, module, lines, settings, device, argv))
    print("\n".join(lines))
    print(f"{kind}: {len(results)} run(s); figure {out / kind}.png/.pdf, summary {out / kind}.md")
    return 0

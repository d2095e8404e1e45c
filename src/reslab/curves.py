"""A run's learning curves in ``curves.csv``: one row per logged step, one column per curve, in every job directory.

Whatever the ``logger`` group holds (TensorBoard, CSV, MLflow, several or none), every job writes its loss, error
and learning-rate curves here: the report and the notebook read them without TensorBoard, a study keeps them
without event files, and ``pandas.read_csv(job / "curves.csv", index_col="step")`` loads them. Runs written before
this file existed are read from their TensorBoard event files (`read_event_curves`). The logger that writes it is
`reslab.training.loggers.CurveLog`; this module reads and formats it without importing Lightning (the report's time).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from reslab.files import write_text_atomic

CURVES_FILE = "curves.csv"
# The columns, in the order a reader expects them (train, then validation, then test).
CURVE_TAGS = ("train/loss", "train/error", "lr", "val/loss", "val/error", "test/loss", "test/error")

Curves = dict[str, tuple[np.ndarray, np.ndarray]]  # tag -> (steps, values), steps increasing


def curves_text(rows: dict[int, dict[str, float]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", *CURVE_TAGS])
    for step in sorted(rows):
        writer.writerow([step, *(_cell(rows[step].get(tag)) for tag in CURVE_TAGS)])
    return out.getvalue()


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return repr(float(value)) if math.isfinite(value) else str(float(value))  # nan, inf: as pandas reads them


def read_curve_rows(path: Path) -> dict[int, dict[str, float]]:
    """``step -> {tag: value}`` of a ``curves.csv``; empty cells are absent. {} when the file is missing."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}
    rows: dict[int, dict[str, float]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("step") in (None, ""):
            continue
        rows[int(row["step"])] = {k: float(v) for k, v in row.items() if k in CURVE_TAGS and v not in ("", None)}
    return rows


def rows_to_curves(rows: dict[int, dict[str, float]]) -> Curves:
    curves = {}
    for tag in CURVE_TAGS:
        steps = [s for s in sorted(rows) if tag in rows[s]]
        if steps:
            curves[tag] = (np.array(steps, dtype=np.int64), np.array([rows[s][tag] for s in steps], dtype=np.float64))
    return curves


def curves_to_rows(curves: Curves) -> dict[int, dict[str, float]]:
    rows: dict[int, dict[str, float]] = {}
    for tag, (steps, values) in curves.items():
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            rows.setdefault(int(step), {})[tag] = float(value)
    return rows


def read_event_curves(job_dir: Path) -> Curves:
    """The curves in a job directory's TensorBoard event files (runs written before ``curves.csv``); {} if none."""
    if not any(Path(job_dir).glob("events.out.tfevents.*")):
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # slow import: only here

    # Keep every scalar (the default keeps a sample of 10k); skip the bulky images and histograms.
    acc = EventAccumulator(
        str(job_dir),
        size_guidance={"scalars": 0, "images": 1, "histograms": 1, "tensors": 1, "compressedHistograms": 1},
    ).Reload()
    tags = set(acc.Tags().get("scalars", []))
    rows: dict[int, dict[str, float]] = {}
    for tag in CURVE_TAGS:
        if tag in tags:
            for event in acc.Scalars(tag):  # a resumed run may repeat steps: the last value written wins
                rows.setdefault(event.step, {})[tag] = event.value
    return rows_to_curves(rows)


def read_curves(job_dir: Path) -> Curves:
    """A job's curves: from ``curves.csv``, or from its event files where it has none (older runs)."""
    path = Path(job_dir) / CURVES_FILE
    if path.exists():
        return rows_to_curves(read_curve_rows(path))
    return read_event_curves(job_dir)


def save_curves(job_dir: Path, curves: Curves) -> None:
    write_text_atomic(Path(job_dir) / CURVES_FILE, curves_text(curves_to_rows(curves)))

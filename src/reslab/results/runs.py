"""Reading a sweep directory back: every job's metrics.json, curves (its curves.csv, or the TensorBoard events of
runs written before it, read with TensorBoard's own reader) and the instruments' arrays. Jobs may be finished,
running, failed or diverged."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reslab.curves import CURVES_FILE, read_curves, save_curves
from reslab.files import is_locked
from reslab.record import METRICS_FILE, RunRecord, read_metrics

# What differs between the two arms of a comparison (or is compared across): everything else must be equal.
PAIRED_ACROSS = {"model", "shortcut", "depth", "seed"}


@dataclass
class Run:
    """One job of a sweep, as found on disk."""

    path: Path
    record: dict
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    grad_norms: dict | None = None  # steps (S,), names (L,), values (S, L)
    responses: dict | None = None
    distinct: str = ""  # identity settings in which this run differs from others of the folder, beyond its variant

    @property
    def run_record(self) -> RunRecord:
        """The typed record this job was written from (`RunRecord.from_metrics`)."""
        return RunRecord.from_metrics(self.record)

    @property
    def model(self) -> str:
        return self.record.get("model", "?")

    @property
    def shortcut(self) -> str:
        """none (plain) | A | B: what orders, styles and pairs the arms (never the model's name)."""
        return self.record.get("shortcut", "?")

    @property
    def variant(self) -> str:
        """Other swept settings of this job (``optim.lr=0.05``); '' for a plain depth/model/seed sweep."""
        return self.record.get("variant") or ""

    @property
    def arm(self) -> str:
        """The curve family: model, plus its variant if the sweep varied more than depth/model/seed, plus any other
        setting of its identity that differs between the folder's runs (runs of other experiments never merge)."""
        swept = self.record.get("swept")  # the variant key by key (the joined string reads "a=1_b=2")
        variant = ", ".join(swept) if isinstance(swept, list) else self.variant
        extra = ", ".join(x for x in (variant, self.distinct) if x)
        return f"{self.model} ({extra})" if extra else self.model

    @property
    def depth(self) -> int:
        return int(self.record.get("depth", 0))

    @property
    def seed(self) -> int:
        return int(self.record.get("seed", 0))

    @property
    def status(self) -> str:
        """As recorded; a job recorded ``running`` whose directory lock nobody holds died without a word
        (killed, out of memory, the machine gone): ``died``."""
        status = self.record.get("status", "unknown")
        return "died" if status == "running" and not is_locked(self.path) else status

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def pairing(self) -> str:
        """What a plain arm and a residual arm must share to be compared: the whole identity but the arm's name, its
        shortcut, depth and seed (older records without an identity: the variant)."""
        identity = self.record.get("identity")
        if not isinstance(identity, dict):
            return self.variant
        return json.dumps({k: v for k, v in identity.items() if k not in PAIRED_ACROSS}, sort_keys=True)

    @property
    def steps(self) -> int:
        if self.curves.get("train/error") is not None and len(self.curves["train/error"][0]):
            return int(max(self.record.get("steps") or 0, self.curves["train/error"][0][-1]))
        return int(self.record.get("steps") or 0)


def read_series(path: Path) -> dict | None:
    if not path.exists():
        return None
    with np.load(path) as data:
        return {"steps": data["steps"], "names": [str(n) for n in data["names"]], "values": data["values"]}


def load_run(job_dir: Path, series: bool = True) -> Run:
    """A job as found on disk; ``series=False`` reads only its record (no curves or instrument arrays)."""
    job_dir = Path(job_dir)
    record = read_metrics(job_dir)
    if record is None:
        record = {"status": "unreadable", "error": f"{job_dir / METRICS_FILE} is missing or not JSON"}
    if not series:
        return Run(job_dir, record)
    return Run(
        job_dir,
        record,
        read_curves(job_dir),
        read_series(job_dir / "grad_norms.npz"),
        read_series(job_dir / "responses.npz"),
    )


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job directories: those holding a metrics.json, at any depth below the sweep directory."""
    return sorted(p.parent for p in Path(sweep_dir).rglob("metrics.json") if ".hydra" not in p.parts)


def write_missing_curves(runs: list[Run]) -> int:
    """Write ``curves.csv`` for runs written before it, from the curves read out of their event files, so that a
    folder keeps its curves without event files (experiments/README.md); never in a job that is running. Returns
    how many were written."""
    written = 0
    for run in runs:
        if run.curves and not (run.path / CURVES_FILE).exists() and not is_locked(run.path):
            save_curves(run.path, run.curves)
            written += 1
    return written


def load_sweep(sweep_dir: str | Path, series: bool = True) -> list[Run]:
    """Every job of the folder, labelled (`label_differences`); ``series=False``: records only, which is all that
    naming and grouping need (the analyses), without reading every run's event files."""
    runs = [load_run(d, series) for d in job_dirs(Path(sweep_dir))]
    label_differences(runs)
    return sorted(runs, key=lambda r: (r.model, r.depth, r.seed, r.path.name))


# Identity keys every report already shows apart (the run's name). A run named like another arm but with another
# shortcut (model=plain model.shortcut=A) is labelled with it, so it is never averaged with that arm's runs.
SHOWN_APART = {"seed", "depth", "model"}


def label_differences(runs: list[Run]) -> None:
    """Where runs of one model in the folder are of different experiments (another dataset, width, schedule or
    norm: two launches into one folder, say), mark each with the identity settings in which they differ that its
    variant does not already show. So they are never averaged as if they were seeds of one, and no run is shown
    under a label that reads like another experiment's (a no-BN run as plain "residual")."""
    groups: dict[str, list[tuple[Run, dict]]] = {}
    for run in runs:
        if isinstance(identity := run.record.get("identity"), dict):
            groups.setdefault(run.model, []).append((run, identity))
    for members in groups.values():
        keys = sorted(set().union(*(i for _, i in members)) - SHOWN_APART)
        varying = [k for k in keys if len({json.dumps(i.get(k), sort_keys=True) for _, i in members}) > 1]
        for run, identity in members:
            shown = [k for k in varying if not any(f"{p}=" in run.variant for p in _prefixes(k))]
            run.distinct = ", ".join(f"{k}={identity.get(k)}" for k in shown)


def _prefixes(key: str) -> list[str]:
    """``schedule.warmup.lr`` -> schedule.warmup.lr, schedule.warmup, optim: a swept group names all its keys."""
    parts = key.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]

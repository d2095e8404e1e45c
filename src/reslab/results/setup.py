"""The report's header: its title, and the setup table of what was run, read from the jobs' own records, so that
`summary.md` can be read alone.

Every line comes from the finished jobs' ``metrics.json`` (their identity, what they measured of themselves and the
machine they ran on); a setting that differs between jobs lists every value it took. Records written before a fact
was recorded (reslab's version and commit, say) leave it out and say so rather than guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from reslab.config import swept_keys
from reslab.plots.style import in_arm_order
from reslab.results.runs import Run

# Settings that name a job (and so vary by design) rather than describe the setup.
VARIES_BY_DESIGN = ("model", "shortcut", "depth", "seed")


def _values(runs: Sequence[Run], *keys: str) -> list:
    """The distinct values of the first of ``keys`` each record has (identity first, then the record itself)."""
    seen = []
    for run in runs:
        identity = run.record.get("identity") or {}
        for key in keys:
            if key in identity or key in run.record:
                value = identity[key] if key in identity else run.record[key]
                if value not in seen:
                    seen.append(value)
                break
    return seen


def _text(values: Iterable) -> str:
    values = list(values)
    return " / ".join(str(v) for v in values) if values else "not recorded"


def _schedule(runs: Sequence[Run]) -> str:
    milestones = _values(runs, "schedule.milestones", "optim.milestones")
    gamma = _values(runs, "schedule.gamma", "optim.gamma")
    warmup = _values(runs, "schedule.warmup.steps", "optim.warmup.steps")
    text = f"lr × {_text(gamma)} at {_text(milestones)} of the steps"
    return text + (f"; warm-up steps {_text(warmup)}" if warmup and warmup != [0] else "")


def _order(value) -> tuple:
    return (isinstance(value, str), value if not isinstance(value, str) else str(value))


def _seen(env: Sequence[dict], key: str) -> list:
    return list(dict.fromkeys(e[key] for e in env if e.get(key)))


def _software(env: Sequence[dict]) -> str:
    text = f"torch {_text(_seen(env, 'torch'))}, Python {_text(_seen(env, 'python'))}"
    if not _seen(env, "reslab"):
        return text + "; reslab's version and commit not recorded (records older than that field)"
    return text + f", reslab {_text(_seen(env, 'reslab'))} at commit {_text(_seen(env, 'commit'))}"


def _dates(env: Sequence[dict]) -> str:
    dates = sorted(_seen(env, "date"))
    if not dates:
        return "not recorded (records older than that field)"
    return dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"


def setup_section(runs: Sequence[Run], command: str | None = None) -> str:
    """A table of the sweep's setup from its finished jobs' records (from every job's when none finished; '' when
    the folder has no job)."""
    done = [r for r in runs if r.status == "finished"] or list(runs)
    if not done:
        return ""
    env = [r.record.get("environment") or {} for r in done]
    image = _values(done, "image_size")
    rows = [
        ("dataset", f"{_text(_values(done, 'dataset'))}, images {_text(f'{s}×{s}' for s in image)}"),
        (
            "batches and augmentation",
            f"batch {_text(_values(done, 'dataset.batch_size'))}; random crop padding "
            f"{_text(_values(done, 'dataset.crop_pad'))}, horizontal flip {_text(_values(done, 'dataset.hflip'))}",
        ),
        (
            "optimiser",
            f"SGD, lr {_text(_values(done, 'optim.lr'))}, momentum {_text(_values(done, 'optim.momentum'))}, "
            f"weight decay {_text(_values(done, 'optim.weight_decay'))}, "
            f"Nesterov {_text(_values(done, 'optim.nesterov'))}",
        ),
        ("steps and schedule", f"{_text(_values(done, 'trainer.max_steps', 'max_steps'))} steps; {_schedule(done)}"),
        ("net", f"width {_text(_values(done, 'width'))}, norm {_text(_values(done, 'model.norm'))}"),
        (
            "precision and device",
            f"{_text(_values(done, 'precision'))} on {_text(_values(done, 'accelerator'))} "
            f"({_text(dict.fromkeys(e.get('cuda') or e.get('cpu') for e in env))})",
        ),
        ("software", _software(env)),
        ("varies", "; ".join(f"{k} {_text(sorted(_values(done, k), key=_order))}" for k in VARIES_BY_DESIGN)),
        ("dates (UTC, each job's latest start)", _dates(env)),
        ("command", f"`{command}`" if command else "not kept with the records"),
    ]
    lines = ["## Setup", "", "| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    return "\n".join(lines) + "\n"


def sweep_command(sweep_dir: Path) -> str | None:
    """The command that launched the sweep, from Hydra's ``multirun.yaml`` at its root (not kept in experiments/)."""
    try:
        import yaml

        overrides = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())["hydra"]["overrides"]["task"]
    except (OSError, KeyError, TypeError, ValueError, ImportError):
        return None
    overrides = [str(o) for o in overrides]
    # The command line adds sweep_keys=[...] itself from the swept keys (reslab.cli): not part of what the user typed.
    rest = [o for o in overrides if not o.startswith("sweep_keys=")]
    added = f"sweep_keys=[{','.join(swept_keys(rest))}]"
    return " ".join(["reslab -m", *(o for o in overrides if o != added)])


def title(sweep_dir: Path, runs: list[Run]) -> str:
    arms = in_arm_order({r.arm: r.shortcut for r in runs})
    models = list(dict.fromkeys(r.model for r in sorted(runs, key=lambda r: arms.index(r.arm))))
    nets = " and ".join(models) + (f" nets ({len(arms)} arms)" if len(arms) > len(models) else " nets")
    depths = ", ".join(str(d) for d in sorted({r.depth for r in runs}))
    datasets = " / ".join(sorted({str(r.record.get("dataset", "?")) for r in runs}))
    return f"# Sweep {sweep_dir.parent.name}/{sweep_dir.name}: {nets} at depths {depths} on {datasets}"

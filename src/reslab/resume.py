"""Which checkpoint a job resumes from, and whether it belongs to this experiment.

A job resumes from ``<job dir>/checkpoints/last.ckpt`` when it exists (rerun with the same
``hydra.run.dir`` / ``hydra.sweep.dir``), or from an explicit ``resume=<path.ckpt>``. Either way the
checkpoint must come from the same architecture and data; anything else is refused with one line.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from reslab.errors import UserError

# What must match for a checkpoint to continue this run (seed and schedule may legitimately differ).
IDENTITY_KEYS = ("model", "shortcut", "depth", "width", "dataset")


def run_facts(cfg: DictConfig) -> dict:
    """What a job is, as recorded in metrics.json: its name and the keys a sweep varies.

    ``variant`` is whatever else the sweep varies for this job (``optim.lr=0.05``), taken from the job
    directory's name; the report keeps variants apart instead of averaging them as if they were seeds."""
    job = Path(cfg.output_dir).name
    variant = job[len(cfg.run_name) + 1:] if job.startswith(cfg.run_name + "_") else ""
    return {"run_name": cfg.run_name, "job": job, "variant": variant, "model": cfg.model.name,
            "shortcut": cfg.model.shortcut, "depth": cfg.depth, "width": cfg.model.width,
            "dataset": cfg.dataset.name, "seed": cfg.seed}


def run_identity(cfg: DictConfig) -> dict:
    facts = run_facts(cfg)
    return {k: facts[k] for k in IDENTITY_KEYS}


def checkpoint_to_resume(cfg: DictConfig, out: Path) -> Path | None:
    if cfg.resume:
        path = Path(cfg.resume)
        if not path.is_file():
            raise UserError(f"resume={cfg.resume}: no such checkpoint file; pass a .ckpt path, e.g. "
                            f"<job dir>/checkpoints/last.ckpt")
    else:
        path = out / "checkpoints" / "last.ckpt"
        if not path.exists():
            return None
    check_compatible(path, run_identity(cfg))
    return path


def check_compatible(path: Path, identity: dict) -> None:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        saved = checkpoint["reslab_identity"]
    except Exception as e:
        raise UserError(f"checkpoint {path} cannot be read ({type(e).__name__}); it is corrupt or not a reslab "
                        f"checkpoint: delete it to start over, or pass another with resume=<path>") from None
    differ = [f"{k}={saved.get(k)!r} (this run: {identity[k]!r})" for k in IDENTITY_KEYS if saved.get(k) != identity[k]]
    if differ:
        raise UserError(f"checkpoint {path} is from a different experiment: {', '.join(differ)}; "
                        f"use another output directory or resume= path")

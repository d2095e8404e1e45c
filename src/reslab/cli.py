"""What `run.py` does around `train`: one-line errors, and failed jobs that never stop a sweep.

A `UserError` (bad override, missing data, ...) is printed as one line. In a single run it exits with
status 2. In a multirun the job is recorded as failed in its ``metrics.json`` (with the error line, and the
full traceback in ``error.log``), the sweep goes on with the next job, and the process exits with status 1
at the end.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from reslab.config import parse_overrides
from reslab.errors import UserError
from reslab.paths import write_json_atomic

log = logging.getLogger("reslab")


# Keys already spelled out in run_name ("plain-56_seed0").
RUN_NAME_KEYS = {"model", "depth", "seed"}


def swept_keys(argv: list[str]) -> set[str]:
    """Keys that the command line sweeps (``depth=20,56``, ``seed=range(3)``, ...)."""
    return {o.key_or_group for o in parse_overrides(argv) if o.is_sweep_override()}


def job_dir_name(run_name: str, task_overrides) -> str:
    """The run name plus every other swept override of this job, so jobs of a sweep never share a directory:
    ``plain-56_seed0``, or ``plain-56_seed0_optim.lr=0.05`` when ``optim.lr`` is swept too."""
    swept = swept_keys(sys.argv[1:]) - RUN_NAME_KEYS
    extra = [o.replace("/", "-") for o in task_overrides if o.split("=", 1)[0].lstrip("+~") in swept]
    return "_".join([run_name, *extra])


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("job_dir_name", job_dir_name, replace=True)


def record_failure(cfg: DictConfig, error_line: str, tb: str) -> Path | None:
    """Write ``metrics.json`` (status failed) and ``error.log`` into the job directory, if it is writable."""
    try:
        out = Path(cfg.output_dir)
        (out / "error.log").write_text(tb)
        from reslab.resume import run_facts
        record = {**run_facts(cfg), "status": "failed", "error": error_line, "traceback": str(out / "error.log")}
        metrics = out / "metrics.json"
        if metrics.exists():  # keep what the run had measured before it failed
            record = {**json.loads(metrics.read_text()), **record}
        write_json_atomic(metrics, record)
        return out / "error.log"
    except Exception:  # the failure may be the unwritable directory itself
        return None


class JobRunner:
    """Callable run by Hydra for every job; counts the failures of a sweep."""

    def __init__(self):
        self.failed: list[str] = []

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def __call__(self, cfg: DictConfig) -> dict | None:
        from reslab.train import train  # imported here so `run.py --help` stays fast

        multirun = HydraConfig.get().mode == RunMode.MULTIRUN
        try:
            return train(cfg)
        except UserError as e:
            line = str(e).splitlines()[0] if str(e) else type(e).__name__
            if not multirun:
                print(f"reslab: error: {line}", file=sys.stderr)
                raise SystemExit(2) from None
            where = record_failure(cfg, line, traceback.format_exc())
        except Exception as e:  # a bug or a crash: keep the sweep going, keep the traceback
            if not multirun:
                raise
            line = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            where = record_failure(cfg, line, traceback.format_exc())
        job = Path(cfg.output_dir).name
        self.failed.append(job)
        print(f"reslab: job {job} failed: {line}" + (f" (traceback: {where})" if where else ""),
              file=sys.stderr)
        return None

"""Hydra callback: the sweep report, kept current as jobs end and written in full when the multirun ends.

Hydra skips ``on_multirun_end`` when a job raises; reslab's jobs record their failures instead of raising
(see `reslab.cli`), and the tables are also rewritten at every job end, so a sweep that dies midway still
leaves an up-to-date summary.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("reslab")


class SweepReport(Callback):
    def __init__(self, figures: bool = True):
        self.figures = figures
        self.sweep_dir: Path | None = None

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        hydra_cfg = getattr(job_return, "hydra_cfg", None)
        if hydra_cfg is None or str(hydra_cfg.hydra.mode) != "RunMode.MULTIRUN":
            return
        # The job's resolved directory, not hydra.sweep.dir: reading that again re-resolves ${now:...} to the
        # current time, a directory that does not exist.
        self.sweep_dir = Path(hydra_cfg.hydra.runtime.output_dir).parent
        self._report(self.sweep_dir, figures=False, quiet=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._report(self.sweep_dir or Path(config.hydra.sweep.dir), figures=self.figures, quiet=False)

    @staticmethod
    def _report(sweep_dir: Path, figures: bool, quiet: bool) -> None:
        from reslab.report import report
        try:
            report(sweep_dir, figures=figures, quiet=quiet)
        except Exception as e:  # a report problem must never take the sweep's results down with it
            log.error("report for %s failed: %s: %s (rerun: python -m reslab.report %s)", sweep_dir,
                      type(e).__name__, e, sweep_dir)

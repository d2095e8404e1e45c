"""The run summary: ``metrics.json`` in the job directory, written at start, at the end and on failure.

It is what the report reads, so it is written for every outcome: ``running`` while training, ``finished``,
or ``failed`` with the error line. Final training loss/error are the mean over the last ``train_window``
training batches (augmented images, BN in train mode: the running training error the paper plots).
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import Any

import lightning as L
import torch

from reslab.paths import write_json_atomic


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class RunSummary(L.Callback):
    """Keeps ``metrics.json`` up to date: static facts of the run plus the final metrics and status."""

    def __init__(self, path: Path, facts: dict, train_window: int = 50):
        self.path = Path(path)
        self.facts = dict(facts)
        self.train_window = train_window
        self._losses: deque = deque(maxlen=train_window)
        self._errors: deque = deque(maxlen=train_window)
        self._start = time.perf_counter()
        self._wall_before = 0.0  # wall time of earlier attempts of a resumed run
        self.record: dict = {}
        # The latest validation and test results; the trainer's callback_metrics forget val after a test.
        self.eval_metrics: dict = {k: None for k in ("val_loss", "val_error", "test_loss", "test_error")}
        self.last_val_step: int | None = None  # global step of the latest validation

    def write(self, status: str, trainer: L.Trainer | None = None, **extra: Any) -> dict:
        record = {**self.facts, "status": status,
                  "steps": trainer.global_step if trainer is not None else 0,
                  **self.train_metrics(), **self.eval_metrics,
                  "wall_time_s": round(self._wall_before + time.perf_counter() - self._start, 2), **extra}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, record)
        self.record = record
        return record

    def train_metrics(self) -> dict:
        if not self._losses:
            return {"train_loss": None, "train_error": None}
        return {"train_loss": _number(torch.stack(list(self._losses)).mean()),
                "train_error": _number(torch.stack(list(self._errors)).mean())}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write("running", trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Detached device scalars; no host sync per step.
        self._losses.append(outputs["loss"].detach().float())
        self._errors.append(outputs["error"].float())

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._keep_eval(trainer, "val")
        self.last_val_step = trainer.global_step

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._keep_eval(trainer, "test")

    def _keep_eval(self, trainer: L.Trainer, stage: str) -> None:
        for name in ("loss", "error"):
            if (value := trainer.callback_metrics.get(f"{stage}/{name}")) is not None:
                self.eval_metrics[f"{stage}_{name}"] = _number(value)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.write("failed", trainer, error=f"{type(exception).__name__}: {exception}".splitlines()[0])

    def state_dict(self) -> dict:
        return {"losses": list(self._losses), "errors": list(self._errors), "eval_metrics": self.eval_metrics,
                "last_val_step": self.last_val_step,
                "wall_time_s": self._wall_before + time.perf_counter() - self._start}

    def load_state_dict(self, state: dict) -> None:
        self._losses.extend(state["losses"])
        self._errors.extend(state["errors"])
        self._wall_before = state["wall_time_s"]
        self.eval_metrics.update(state.get("eval_metrics", {}))
        self.last_val_step = state.get("last_val_step")

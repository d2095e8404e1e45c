"""Stop a run whose loss becomes NaN or inf, and say when.

The check stays on the device (no host sync per step); every ``check_every_n_steps`` steps one sync looks at
the buffered losses, finds the first non-finite one and stops the trainer. `train` then records the run
as ``diverged`` with that step and the last finite loss, and the sweep carries on.
"""

from __future__ import annotations

import math

import lightning as L
import torch


class DivergenceGuard(L.Callback):
    def __init__(self, check_every_n_steps: int = 5):
        self.check_every_n_steps = check_every_n_steps
        self._losses: list[torch.Tensor] = []
        self._first_step = 0
        self.last_finite_loss: float | None = None
        self.diverged_at_step: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._losses:
            self._first_step = trainer.global_step - 1  # the step whose loss this is
        self._losses.append(outputs["loss"].detach())
        if len(self._losses) >= self.check_every_n_steps or trainer.global_step >= trainer.max_steps:
            self.check(trainer)

    def check(self, trainer: L.Trainer) -> None:
        if not self._losses:
            return
        losses = torch.stack(self._losses).float().cpu().tolist()
        first = self._first_step
        self._losses = []
        for offset, loss in enumerate(losses):
            if not math.isfinite(loss):
                self.diverged_at_step = first + offset
                trainer.should_stop = True
                return
            self.last_finite_loss = loss

    def state_dict(self) -> dict:
        return {"last_finite_loss": self.last_finite_loss}

    def load_state_dict(self, state: dict) -> None:
        self.last_finite_loss = state.get("last_finite_loss")

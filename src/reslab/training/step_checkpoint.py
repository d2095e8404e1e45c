"""The checkpoint every N training steps (``callbacks.checkpoint``): Lightning's ModelCheckpoint, saved after the
step's validation when one is scheduled at that step.

Found by tools/chaos.py: Lightning saves a step-triggered checkpoint at the end of the training batch, before that
step's validation, and a run restarted from such a checkpoint skips that validation (Lightning 2.6 fast-forwards the
validation loop on a restart "on train batch end"). A job killed between the two lost the validation point for good:
its resumed curves lacked it. Saved after the validation instead, the checkpoint holds the step with its validation
done, and Lightning's restart from a checkpoint saved "on last" skips it rightly. The save is deferred exactly when a
restart from this step would skip a validation, with Lightning's own mechanism for a deferred save
(``_defer_save_until_validation``, saved at ``on_validation_end``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


def validation_scheduled(trainer: L.Trainer) -> bool:
    """Whether the training loop validates after this batch on its schedule: Lightning's own decision
    (``_should_check_val_fx``) as a restarted run makes it, i.e. without a stop request, and only if the
    validation loop has data to run (set up now, as Lightning would set it up for that validation)."""
    loop = trainer.fit_loop.epoch_loop
    if trainer.limit_val_batches == 0:
        return False
    loop.val_loop.setup_data()
    if loop.val_loop.skip:
        return False
    stop, trainer.should_stop = trainer.should_stop, False  # a stop request's validation is not scheduled
    try:
        return loop._should_check_val_fx(trainer.fit_loop._data_fetcher)
    finally:
        trainer.should_stop = stop


class StepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint(every_n_train_steps=N, ...)``, written after the validation of its step (module docstring)."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        due = self._every_n_train_steps >= 1 and trainer.global_step % self._every_n_train_steps == 0
        if due and not self._should_skip_saving_checkpoint(trainer) and validation_scheduled(trainer):
            self._defer_save_until_validation = True  # saved by ModelCheckpoint.on_validation_end
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

"""A fault the tests inject into real runs. Kept out of conftest.py so that pytest's controlling process (under
pytest-xdist it runs no test) does not import torch and Lightning: about 10 s of one core on a 2-core machine."""

import lightning as L
import torch


class NanWeightsAt(L.Callback):
    """Makes a run diverge: NaN weights in the last layer from step ``step`` on, so that step's loss is the first
    non-finite one."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                pl_module.net.fc.weight.fill_(float("nan"))

"""The LightningModule: loss, error metrics, the optimiser the config names, step decay and an optional warm-up.

The net, the optimiser (a partial, called with the net's parameters) and the schedule are built from the config
outside and passed in (`reslab.build`); nothing here depends on which arm the net is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from reslab.training.net_layout import is_compiled
from reslab.training.step_graph import GraphedStep, cuda_graph_mode

# The fused kernel: one pass over all parameters instead of a loop of per-tensor ops, the same update to rounding
# (timings: experiments/performance/optimizer_step.py). Given to every optimiser that takes it (SGD, Adam, AdamW).
FUSED_KERNEL = {"fused": True, "foreach": None}


@dataclass(frozen=True)
class Warmup:
    """A low lr at the start (the paper's ResNet-110 rule: 0.01 until the training error is below 80%).

    lr: the lr while warming up. steps: warm up for at most this many steps (0 = no warm-up).
    until_error: end early once a batch's training error is below this; None = only ``steps`` counts.
    """

    lr: float = 0.01
    steps: int = 0
    until_error: float | None = None


@dataclass(frozen=True)
class StepSchedule:
    """The lr multiplied by ``gamma`` at each milestone, a fraction of the run's steps (the paper: 32k and 48k of 64k
    = 0.5, 0.75; gamma 0.1), after an optional warm-up (`Warmup`)."""

    milestones: Sequence[float] = (0.5, 0.75)
    gamma: float = 0.1
    warmup: Warmup = field(default_factory=Warmup)

    def factor(self, max_steps: int) -> Callable[[int], float]:
        """lr multiplier after ``step`` optimiser steps of a run of ``max_steps``."""
        steps = [round(f * max_steps) for f in self.milestones]
        return lambda step: self.gamma ** sum(step >= m for m in steps)


class Classifier(L.LightningModule):
    """Cross-entropy classifier trained with ``optimizer`` and ``schedule`` over ``max_steps``.

    Args:
        net: the model, input (B, C, H, W) -> logits (B, classes).
        optimizer: a torch optimiser without its parameters (``functools.partial(torch.optim.SGD, lr=0.1, ...)``,
            the config's ``optim``); its ``lr`` is the base of the schedule.
        max_steps: the iteration budget; milestones are fractions of it.
        schedule: step decay and the optional warm-up (`StepSchedule`).
        identity: facts that a checkpoint must match to be resumed (see `reslab.record`).
        cuda_graph: ``runtime.cuda_graph``: false, Lightning's automatic step; true, forward, loss and backward
            recorded as one CUDA graph (`reslab.training.step_graph`), the update done by Lightning's manual
            optimisation; ``eager``, that same manual step unrecorded, on any device.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        max_steps: int,
        schedule: StepSchedule | None = None,
        identity: dict | None = None,
        cuda_graph: bool | str = False,
    ):
        super().__init__()
        self.cuda_graph = cuda_graph_mode(cuda_graph)
        self.automatic_optimization = self.cuda_graph is None
        self._graphed_step: GraphedStep | None = None
        self.identity = identity or {}  # what the run is (model, depth, ...), stored in checkpoints
        self.net = net
        self.optimizer, self.max_steps = optimizer, max_steps
        self.schedule = schedule or StepSchedule()
        self.warmup = self.schedule.warmup
        self.warming_up = self.warmup.steps > 0
        self.step_lr = float("nan")  # the lr of the step in progress (set at its start)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss_and_error(self, batch: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        return self._loss_and_error_of(*batch)

    def _loss_and_error_of(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        error = (logits.argmax(dim=1) != y).float().mean()
        return loss, error

    def _is_logging_step(self) -> bool:
        """Whether this training step's scalars are written: on the steps Lightning's ``self.log`` would write,
        every ``log_every_n_steps`` (counted as Lightning counts them, from inside the step) and once the trainer is
        told to stop. This is the rule of Lightning's ``_LoggerConnector.should_update_logs``, restated because
        that is private; a test checks that reslab writes the same steps and values as ``self.log`` does.

        The other steps read nothing from the device: on a GPU, reading a value waits for all queued work.
        """
        every = self.trainer.log_every_n_steps
        step = self.global_step + 1
        return bool(every) and (step % every == 0 or self.trainer.should_stop)

    def training_step(self, batch: tuple, batch_idx: int) -> dict:
        """``loss`` is this process's, for its backward pass; ``batch_loss`` and ``error`` are the whole batch's,
        which everything else reads (logs, metrics.json, the divergence guard, the warm-up), so that with several
        processes every one of them sees and decides the same as one process would."""
        if not self.automatic_optimization:
            return self._manual_step(batch)
        loss, error = self._loss_and_error(batch)
        return self._after_step(loss, loss.detach(), error.detach(), self._is_logging_step(), self.global_step)

    def _manual_step(self, batch: tuple) -> dict:
        """The step of ``cuda_graph`` true or eager: the graphed (or eager) forward and backward, then the update
        and the schedule's step as Lightning's automatic step does them."""
        logging, step = self._is_logging_step(), self.global_step  # before the update, which counts the step
        if self._graphed_step is None:
            params = list(self.net.parameters())
            self._graphed_step = GraphedStep(self._loss_and_error_of, params, record=self.cuda_graph == "graph")
        loss, error = self._graphed_step(*batch)
        self.optimizers().step()
        self.lr_schedulers().step()
        return self._after_step(loss, loss, error, logging, step)

    def _after_step(self, loss, batch_loss: torch.Tensor, error: torch.Tensor, logging: bool, step: int) -> dict:
        if self.trainer.world_size > 1:  # equal parts per process: the mean of their means is the batch's
            batch_loss, error = self.trainer.strategy.reduce(torch.stack([batch_loss, error]), reduce_op="mean")
        if logging:
            logged = {"train/loss": batch_loss, "train/error": error, **self._by_depth("train_error", error)}
            self._log_train(logged, self.step_lr, step)
        if self.warming_up:
            self._update_warmup(error, step)
        return {"loss": loss, "batch_loss": batch_loss, "error": error}

    def _log_train(self, values: dict[str, torch.Tensor], lr: float, step: int) -> None:
        """The training step's scalars, straight to the run's loggers at TensorBoard step ``step``: the tags, steps
        and values Lightning's ``self.log`` writes (a test compares the two), with one read from the device for
        them all. ``self.log`` costs about a millisecond of Python per value, 1-2% of a depth-20 CPU step
        (experiments/performance/step_before_after/)."""
        if not self.loggers:
            return
        numbers = torch.stack([v.float() for v in values.values()]).tolist()
        for logger in self.loggers:
            logger.log_metrics({**dict(zip(values, numbers)), "lr": lr}, step=step)

    def _update_warmup(self, error: torch.Tensor, step: int) -> None:
        done = step + 1 >= self.warmup.steps
        if self.warmup.until_error is not None and error.item() < self.warmup.until_error:
            done = True
        self.warming_up = not done

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        loss, error = self._loss_and_error(batch)
        logged = {"val/loss": loss, "val/error": error, **self._by_depth("val_error", error)}
        self.log_dict(logged, on_epoch=True, batch_size=len(batch[1]))

    def _by_depth(self, name: str, value: torch.Tensor) -> dict:
        """The same value under ``views/by_depth/<depth>/<name>``: TensorBoard's custom-scalar layout draws every arm of
        one depth in one chart by tag (reslab.tensorboard_views)."""
        depth = self.identity.get("depth")
        return {f"views/by_depth/{depth}/{name}": value} if depth is not None else {}

    def test_step(self, batch: tuple, batch_idx: int) -> None:
        loss, error = self._loss_and_error(batch)
        self.log_dict({"test/loss": loss, "test/error": error}, on_epoch=True, batch_size=len(batch[1]))

    def on_train_batch_start(self, batch: tuple, batch_idx: int) -> None:
        if is_compiled(self.net):
            # CUDA graphs (compile mode reduce-overhead) reuse their output memory: tell them a new step begins.
            torch.compiler.cudagraph_mark_step_begin()
        # The scheduler sets the lr after every step; while warming up, override it for this step.
        lr = self.warmup.lr if self.warming_up else self.lr_schedulers().get_last_lr()[0]
        if self.warming_up:
            for group in self.optimizers().param_groups:
                group["lr"] = lr
        self.step_lr = lr  # written with the step's other scalars

    def configure_optimizers(self):
        optimizer = self.optimizer(self.net.parameters(), **FUSED_KERNEL)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule.factor(self.max_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["warming_up"] = self.warming_up
        checkpoint["reslab_identity"] = self.identity

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.warming_up = checkpoint.get("warming_up", self.warming_up)
        carry_step_count(checkpoint, self.automatic_optimization)
        # A saved optimiser's param groups carry the kernel choice of the code that saved them, and loading
        # them would bring it back; which kernel computes the update is this code's choice.
        for state in checkpoint.get("optimizer_states", []):
            for group in state.get("param_groups", []):
                group.update(FUSED_KERNEL)


AUTOMATIC_STEPS = "epoch_loop.automatic_optimization.optim_progress"
MANUAL_STEPS = "epoch_loop.manual_optimization.optim_step_progress"


def carry_step_count(checkpoint: dict, automatic: bool) -> None:
    """Lightning counts the steps of its automatic and manual optimisation apart, and a run resumed in the other
    mode (``runtime.cuda_graph`` changed between attempts) would restart its count at 0: copy the count of the
    mode that saved the checkpoint into the one that resumes it."""
    loops = checkpoint.get("loops", {}).get("fit_loop", {})
    if AUTOMATIC_STEPS not in loops or MANUAL_STEPS not in loops:
        return
    auto, manual = loops[AUTOMATIC_STEPS]["optimizer"]["step"], loops[MANUAL_STEPS]
    if automatic and auto["total"]["completed"] < manual["total"]["completed"]:
        auto.update(copy.deepcopy(manual))
        loops[AUTOMATIC_STEPS]["optimizer"]["zero_grad"] = {
            part: {**counts, "started": counts["completed"]} for part, counts in copy.deepcopy(manual).items()
        }
    elif not automatic and manual["total"]["completed"] < auto["total"]["completed"]:
        manual.update(copy.deepcopy(auto))

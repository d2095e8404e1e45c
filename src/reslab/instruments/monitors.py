"""Per-run instruments (Lightning callbacks): per-layer gradient norms and layer responses (He et al. Fig. 7).

Both measure and record; neither assumes a story. Each keeps its series in memory, saves it in the job
directory as ``.npz`` (steps × layers, with the layer names in depth order) and logs it to TensorBoard.
Their state travels in checkpoints, so a resumed run continues the same series.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from reslab.files import write_atomic
from reslab.instruments.figure_writer import FigureWriter
from reslab.models import depth_layers
from reslab.training.readback import Readback


def save_series(path: Path, steps: list[int], names: list[str], rows: list[np.ndarray]) -> None:
    """``steps`` (S,), ``names`` (L,), ``values`` (S, L) float32; written atomically."""
    values = np.stack(rows).astype(np.float32) if rows else np.zeros((0, len(names)), np.float32)
    arrays = {"steps": np.asarray(steps, dtype=np.int64), "names": np.asarray(names), "values": values}
    write_atomic(path, lambda f: np.savez(f, **arrays))


def tensorboard(trainer: L.Trainer):
    """The SummaryWriter of the run's TensorBoard logger, or None when logging is off."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


class _Series(L.Callback):
    """Shared bookkeeping: a named series of per-layer values, saved at the end of fit and on checkpoints."""

    filename = ""
    # With several processes (reslab.training.ranks) instruments run on rank 0 only: the gradients they read are
    # already averaged over the processes, and the weights are the same in every one.
    rank_zero_only = True

    def __init__(self, every_n_steps: int, figure_every_n_steps: int, out_dir: str | Path):
        self.every_n_steps = every_n_steps
        self.figure_every_n_steps = figure_every_n_steps
        self.path = Path(out_dir) / self.filename
        self.names: list[str] = []
        self.steps: list[int] = []
        self.rows: list[np.ndarray] = []
        # Measurements on their way to the host (`Readback`): kept in order, recorded once they have arrived.
        self._pending: list[tuple[int, Readback]] = []
        self._figure_writer = FigureWriter()  # TensorBoard figures drawn off the training thread
        self._trainer: L.Trainer | None = None  # the run's, kept to log what arrives where Lightning passes none

    def _send(self, trainer: L.Trainer, step: int, values: torch.Tensor) -> None:
        self._trainer = trainer
        self._pending.append((step, Readback(values.float())))

    def _receive(self, wait: bool = False) -> None:
        """Record and log the measurements that have arrived, in order; with ``wait``, all of them."""
        while self._pending and (wait or self._pending[0][1].ready()):
            step, copy = self._pending.pop(0)
            values = copy.wait().numpy()
            self.steps.append(step)
            self.rows.append(values)
            self._record(self._trainer, step, values)

    def _record(self, trainer: L.Trainer, step: int, values: np.ndarray) -> None:
        """What a measurement does once on the host, besides joining the series (TensorBoard)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._receive()

    def save(self) -> None:
        self._receive(wait=True)  # nothing measured is left out of the file
        if self.names:
            save_series(self.path, self.steps, self.names, self.rows)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save()  # which records what is still on its way first
        self._figure_writer.flush()  # every figure in the event file before the run's logger closes

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.save()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        with contextlib.suppress(Exception):  # the figures drawn so far reach the event file; the run's error is
            self._figure_writer.flush()  # the one to report

    def state_dict(self) -> dict:
        self._receive(wait=True)
        return {"steps": list(self.steps), "rows": [r.tolist() for r in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.steps = list(state["steps"])
        self.rows = [np.asarray(r, dtype=np.float32) for r in state["rows"]]

    def _figure_due(self, step: int) -> bool:
        return self.figure_every_n_steps > 0 and step % self.figure_every_n_steps == 0


class GradNormMonitor(_Series):
    """L2 norm of each conv/linear weight's gradient, every ``every_n_steps`` steps.

    Computed in ``on_before_optimizer_step``, where AMP gradients are already unscaled, only on logging
    steps, with one ``_foreach_norm`` over all layers and a single copy to the host, read once it has arrived
    (`Readback`: on a GPU the step does not wait for it).
    TensorBoard: ``grad_norm/<layer>`` scalars, a histogram of the per-layer norms, summary scalars
    (``grad_norm_summary/first_over_last`` and the max/min over layers), and figures of norm vs layer
    and the layer × step heat map every ``figure_every_n_steps``.
    """

    filename = "grad_norms.npz"

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        layers = depth_layers(pl_module.net)  # projection shortcuts kept out of the layer index
        self.names = [name for name, _ in layers]
        self._weights = [m.weight for _, m in layers]

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        step = trainer.global_step
        if step % self.every_n_steps != 0 or any(w.grad is None for w in self._weights):
            return
        self._send(trainer, step, torch.stack(torch._foreach_norm([w.grad for w in self._weights])))
        self._receive()

    def _record(self, trainer: L.Trainer, step: int, norms: np.ndarray) -> None:
        writer = tensorboard(trainer)
        if writer is None:
            return
        for name, value in zip(self.names, norms):
            writer.add_scalar(f"grad_norm/{name}", value, step)
        finite = norms[np.isfinite(norms)]
        if finite.size:  # a diverging run has NaN norms; TensorBoard's histogram rejects them
            writer.add_histogram("grad_norm_summary/per_layer", finite, step)
        writer.add_scalar("grad_norm_summary/first_over_last", norms[0] / max(norms[-1], 1e-30), step)
        arm = trainer.lightning_module.identity.get("model") if hasattr(trainer.lightning_module, "identity") else None
        if arm:  # the first, middle and last layer under the arm's name: the custom-scalar layout's charts
            for where, i in (("first", 0), ("middle", len(norms) // 2), ("last", len(norms) - 1)):
                writer.add_scalar(f"views/by_arm/{arm}/grad_norm_{where}", norms[i], step)
        writer.add_scalar("grad_norm_summary/max", norms.max(), step)
        writer.add_scalar("grad_norm_summary/min", norms.min(), step)
        if (self._figure_due(step) or step + 1 >= trainer.max_steps) and finite.size == norms.size:
            self._figures(writer, step, norms)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._receive(wait=True)
        # The last measurement gets its figures too, whatever the interval, unless they were just drawn.
        last = self.steps[-1] if self.steps else None
        if last is not None and not self._figure_due(last) and last + 1 < trainer.max_steps:
            writer = tensorboard(trainer)
            if writer is not None and self.figure_every_n_steps > 0 and np.isfinite(self.rows[-1]).all():
                self._figures(writer, last, self.rows[-1])
        super().on_train_end(trainer, pl_module)

    def _figures(self, writer, step: int, norms: np.ndarray) -> None:
        if self.figure_every_n_steps > 0:  # the series as it is now, copied for the figures' thread
            args = (writer, step, list(self.names), norms.copy(), np.asarray(self.steps), np.stack(self.rows))
            self._figure_writer.submit(_draw_grad_norm_figures, *args)


class ResponseMonitor(_Series):
    """Std of each 3×3 layer's response (after BN, before the addition and the ReLU) on a fixed batch.

    The batch is the first ``batch_size`` validation images, in eval mode (BN running statistics), so the
    measurements of one run, and of runs of one sweep, are comparable. Measured every ``every_n_steps``
    and at the end of training.
    """

    filename = "responses.npz"

    def __init__(self, every_n_steps: int, figure_every_n_steps: int, out_dir: str | Path, batch_size: int = 256):
        super().__init__(every_n_steps, figure_every_n_steps, out_dir)
        self.batch_size = batch_size

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        x, _ = dm.resident("val") if len(dm.val[1]) else dm.resident("train")
        self._batch = x[: self.batch_size]
        self._bns = response_layers(pl_module.net)
        self.names = [conv for conv, _ in self._bns]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step  # already incremented: the measurement follows `step` updates
        if step % self.every_n_steps == 0 and self._last_step() != step:
            self.measure(trainer, pl_module, step)
        self._receive()

    def _last_step(self) -> int | None:
        return self._pending[-1][0] if self._pending else self.steps[-1] if self.steps else None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._last_step() != trainer.global_step:
            self.measure(trainer, pl_module, trainer.global_step)
        super().on_train_end(trainer, pl_module)

    @torch.no_grad()
    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        stds: list[torch.Tensor] = []
        hooks = [bn.register_forward_hook(lambda m, i, out: stds.append(out.float().std())) for _, bn in self._bns]
        was_training = pl_module.training
        pl_module.eval()
        try:
            x = self._batch.to(pl_module.device)
            # Eager even when the net is compiled: the hooks would otherwise cost two recompilations each time.
            with torch.compiler.set_stance("force_eager"):
                pl_module(trainer.datamodule.normalize(x))  # no augmentation: the same images every time
        finally:
            for h in hooks:
                h.remove()
            pl_module.train(was_training)
        self._send(trainer, step, torch.stack(stds))

    def _record(self, trainer: L.Trainer, step: int, values: np.ndarray) -> None:
        writer = tensorboard(trainer)
        if writer is not None:
            for name, value in zip(self.names, values):
                writer.add_scalar(f"response_std/{name}", value, step)
            if self._figure_due(step) or step == trainer.max_steps:
                self._figure_writer.submit(_draw_response_figure, writer, step, list(self.names), values.copy())


def _draw_grad_norm_figures(writer, step: int, names: list, norms: np.ndarray, steps: np.ndarray, rows: np.ndarray):
    from reslab.plots import training as plots

    profile = plots.layer_profile_figure(names, norms, "gradient L2 norm", title=f"step {step}", log=True)
    writer.add_figure("figures/grad_norm_vs_layer", profile, step)
    writer.add_figure("figures/grad_norm_heatmap", plots.heatmap_figure(names, steps, rows, "gradient L2 norm"), step)


def _draw_response_figure(writer, step: int, names: list, values: np.ndarray) -> None:
    from reslab.plots import training as plots

    profile = plots.layer_profile_figure(names, values, "response std", title=f"step {step}")
    writer.add_figure("figures/response_std_vs_layer", profile, step)


def response_layers(net: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    """(3×3 conv name, the BN right after it) in depth order; projection-shortcut BNs are not responses."""
    modules = dict(net.named_modules())
    pairs = []
    for name, module in modules.items():
        if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
            pairs.append((name, modules[name.replace(".conv", ".bn")]))  # stem.conv -> stem.bn, ...conv1 -> bn1
    return pairs

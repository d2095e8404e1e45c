"""`GraphedStep`: a training step's forward, loss, error and backward as one CUDA graph (``runtime.cuda_graph``).

A ResNet-56 step on a large GPU is a few milliseconds of kernels, but Python launches them one by one, and the
host's time per step (Lightning's loop, the autograd engine handing each gradient over) is longer than the GPU's:
the step is host-bound (experiments/performance/). Recorded once as a CUDA graph, the ~600 kernels of forward and
backward are launched by one call, so the host runs ahead while the GPU works.

What is in the graph and what is not:
- in: the forward pass under the run's autocast (bf16), the cross-entropy loss, the batch's error and the
  backward pass, which writes the gradients into the same tensors on every replay (each step's gradients, not
  a sum: nothing sets them to None after the capture);
- out: the batch and its augmentation (copied into the graph's input tensors each step), and the optimiser's
  update, which stays with Lightning (manual optimisation) so that the step count, the lr schedule and the
  ``on_before_optimizer_step`` instruments work as in the eager step. The fused SGD update is one kernel launch.

The first `WARMUP_STEPS` steps run eagerly on a side stream, as torch's CUDA-graph guide asks (cuDNN's autotuning,
lazy allocations); they are real training steps. Then the step is captured and replayed. torch records the
graph with `torch.cuda.graph` (its "whole network capture"): torch.compile's own CUDA graphs
(``reduce-overhead``) stop at the boundary between forward and backward and leave the gradients' hand-over on
the host.

On a CPU the same step runs eagerly (the tests compare it with Lightning's automatic step); ``train`` refuses
``runtime.cuda_graph=true`` without a GPU rather than ignore it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from reslab.errors import UserError
from reslab.schema import check_choice

WARMUP_STEPS = 3
# torch.compile modes that make CUDA graphs of their own, which cannot be recorded inside another graph.
COMPILE_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def cuda_graph_mode(value: object) -> str | None:
    """``runtime.cuda_graph`` as None (Lightning's automatic step), ``graph`` (true) or ``eager``."""
    word = check_choice("runtime.cuda_graph", value)
    return {"false": None, "true": "graph", "eager": "eager"}[word]


def check_cuda_graph(mode: str | None, accelerator: str, devices: int, precision: str, compiled: str | None) -> None:
    """One line for each setting that ``runtime.cuda_graph=true`` cannot work with."""
    if mode != "graph":
        return
    if accelerator != "gpu":
        raise UserError("runtime.cuda_graph=true needs a CUDA GPU; set runtime.cuda_graph=false on a CPU")
    if devices > 1:
        raise UserError("runtime.cuda_graph=true runs on one device; set trainer.devices=1 or runtime.cuda_graph=false")
    if precision == "16-mixed":
        raise UserError(
            "runtime.cuda_graph=true cannot record fp16's loss scaling; use runtime.precision=bf16 or 32 with it"
        )
    if compiled in COMPILE_GRAPH_MODES:
        raise UserError(
            f"runtime.compile={compiled} makes CUDA graphs of its own; with runtime.cuda_graph=true use "
            f"runtime.compile=default or false"
        )


class GraphedStep:
    """``step(x, y) -> (loss, error)``: forward, loss and backward of ``loss_and_error`` over ``params``, leaving
    the gradients in ``p.grad``; with ``record``, recorded as a CUDA graph after `WARMUP_STEPS` eager steps when
    ``x`` is on a GPU.

    ``loss_and_error(x, y)`` must be the same computation every step (no data-dependent Python branches), as
    any captured function must. The loss and error returned are new tensors, safe to keep across steps.
    """

    def __init__(
        self,
        loss_and_error: Callable,
        params: Sequence[torch.nn.Parameter],
        record: bool = True,
        warmup_steps: int = WARMUP_STEPS,
    ):
        self.loss_and_error = loss_and_error
        self.record = record
        self.params = list(params)
        self.warmup_steps = warmup_steps
        self.eager_steps = 0
        self.graph: torch.cuda.CUDAGraph | None = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not (self.record and x.is_cuda):
            return self._eager(x, y)
        if self.graph is None and self.eager_steps < self.warmup_steps:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), self._autocast():  # as in the capture: a compiled net sees one state
                out = self._eager(x, y)
            torch.cuda.current_stream().wait_stream(side)
            self.eager_steps += 1
            return out
        if self.graph is None:
            self._capture(x, y)
        if x.shape != self._x.shape or y.shape != self._y.shape:
            raise RuntimeError(
                f"the CUDA graph was recorded for batches of {tuple(self._x.shape)} and got {tuple(x.shape)}; "
                f"runtime.cuda_graph=true needs training batches of one size"
            )
        self._x.copy_(x)
        self._y.copy_(y)
        self.graph.replay()
        return self._loss.clone(), self._error.clone()

    def _eager(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for p in self.params:
            p.grad = None
        loss, error = self.loss_and_error(x, y)
        loss.backward()
        return loss.detach(), error.detach()

    @staticmethod
    def _autocast() -> torch.autocast:
        """The run's autocast (Lightning's, around the training step) without its cache of cast weights, which
        would keep the capture step's casts; the graph must redo them every replay."""
        dtype, enabled = torch.get_autocast_dtype("cuda"), torch.is_autocast_enabled("cuda")
        return torch.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=False)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # Inputs with the batch's shape and layout (clone keeps channels-last strides).
        self._x, self._y = x.clone(), y.clone()
        for p in self.params:  # the backward pass inside the graph allocates them in the graph's memory
            p.grad = None
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            with self._autocast():
                loss, error = self.loss_and_error(self._x, self._y)
            loss.backward()
        self._loss, self._error = loss.detach(), error.detach()

"""Where the instruments' cost goes: reslab's training path with the default callbacks, each instrument part
wrapped in a wall-clock timer.

    .venv/bin/python experiments/performance/instrument_parts.py [--depths 20 56] [--steps 300] [key=value ...]

Times ``--steps`` training steps (300 at the defaults hold every periodic measurement: 60 gradient-norm
measurements, 6 response measurements and one round of the three TensorBoard figures) and prints, per part,
the seconds spent and their share of the window:

    grad norms: measure   the norms' computation and copy to the host (GradNormMonitor, minus its logging)
    grad norms: log       TensorBoard scalars and histogram (GradNormMonitor._log, minus its figures)
    responses: measure    the eager forward pass with hooks on the fixed batch (ResponseMonitor.measure, minus
                          its logging)
    figures               building and rendering the three matplotlib figures into TensorBoard
                          (reslab.plots.training.*_figure and SummaryWriter.add_figure)

The parts are nested calls, so each is reported net of the parts inside it.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections import defaultdict

from torch.utils.tensorboard import SummaryWriter

from reslab.bench.timing import StepTimer, time_reslab
from reslab.config import compose_config
from reslab.instruments import GradNormMonitor, ResponseMonitor
from reslab.plots import training as figures

WARMUP = 3


class Clock:
    """Wall time per part, net of the timed parts called inside it, counted while ``active``."""

    def __init__(self):
        self.active = False
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []  # per open call: [start, time spent in timed calls inside]

    def wrap(self, owner, attribute: str, part: str) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            self._stack.append([time.perf_counter(), 0.0])
            try:
                return original(*args, **kwargs)
            finally:
                start, inner = self._stack.pop()
                spent = time.perf_counter() - start
                if self.active:
                    self.seconds[part] += spent - inner
                if self._stack:
                    self._stack[-1][1] += spent

        setattr(owner, attribute, timed)


def watch_the_window(clock: Clock) -> None:
    """Count only inside the benchmark's timed window: from its start (after the warm-up steps, whose step-0
    measurements and figures are left out) to the end of the last step (before the response measured at
    the end of training)."""
    start, end = StepTimer.on_train_batch_start, StepTimer.on_train_end

    def on_train_batch_start(timer, trainer, *args):
        start(timer, trainer, *args)
        clock.active = clock.active or trainer.global_step == timer.warmup

    def on_train_end(timer, *args):
        clock.active = False
        end(timer, *args)

    StepTimer.on_train_batch_start, StepTimer.on_train_end = on_train_batch_start, on_train_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    clock = Clock()
    clock.wrap(GradNormMonitor, "on_before_optimizer_step", "grad norms: measure")
    clock.wrap(GradNormMonitor, "_log", "grad norms: log")
    clock.wrap(ResponseMonitor, "measure", "responses: measure")
    watch_the_window(clock)
    for name in ("layer_profile_figure", "heatmap_figure"):
        clock.wrap(figures, name, "figures")
    clock.wrap(SummaryWriter, "add_figure", "figures")
    print(f"{'model':>9} {'depth':>5} {'ms/step':>8}  part: seconds in the window (share)")
    for depth in args.depths:
        cfg = compose_config(
            [
                "model=residual",
                f"depth={depth}",
                f"trainer.max_steps={args.steps + WARMUP}",
                "trainer.val_check_interval=1000000",
                "trainer.limit_val_batches=0",
                "callbacks.checkpoint.every_n_train_steps=1000000",
                *args.overrides,
            ],
            output_dir=tempfile.mkdtemp(),
        )
        clock.seconds.clear()
        per_step = time_reslab(cfg, with_instruments=True, warmup=WARMUP)
        window = per_step * args.steps
        parts = dict(clock.seconds)
        shares = ", ".join(f"{k}: {v:.2f} s ({100 * v / window:.1f}%)" for k, v in sorted(parts.items()))
        print(
            f"{'residual':>9} {depth:>5} {1000 * per_step:8.1f}  {shares}; "
            f"all: {100 * sum(parts.values()) / window:.1f}%",
            flush=True,
        )


if __name__ == "__main__":
    main()

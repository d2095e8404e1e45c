"""cProfile of reslab's training path on a tiny net, where the framework's per-step cost is most of the step.

    .venv/bin/python experiments/performance/profile_step.py [key=value ...]

Trains residual-8 (width 4, batch 8, synthetic data) for 300 steps with the instruments off and every step
logged (``trainer.log_every_n_steps=1``), then prints the time per step, the calls and cost per call of
Lightning's ``self.log`` (``LightningModule.log``), and the 15 most expensive functions by own time.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile

from reslab.bench.timing import time_reslab
from reslab.config import compose_config

STEPS, WARMUP = 300, 10


def main() -> None:
    cfg = compose_config(
        [
            "model=residual",
            "depth=8",
            "model.width=4",
            "dataset=synthetic",
            "dataset.batch_size=8",
            "dataset.synthetic_train=4000",
            f"trainer.max_steps={STEPS + WARMUP}",
            "trainer.log_every_n_steps=1",
            "trainer.val_check_interval=1000000",
            "trainer.limit_val_batches=0",
            "callbacks.checkpoint.every_n_train_steps=1000000",
            *sys.argv[1:],
        ],
        output_dir=tempfile.mkdtemp(),
    )
    profile = cProfile.Profile()
    profile.enable()
    seconds = time_reslab(cfg, with_instruments=False, warmup=WARMUP)
    profile.disable()
    stats = pstats.Stats(profile)
    log = [
        (calls, total)
        for (path, _, name), (_, calls, _, total, _) in stats.stats.items()
        if name == "log" and path.endswith("lightning/pytorch/core/module.py")
    ]
    print(f"{1000 * seconds:.2f} ms per step (under cProfile)")
    for calls, total in log:
        print(f"LightningModule.log: {calls} calls, {1000 * total / calls:.2f} ms per call")
    stats.sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()

"""cProfile of reslab's full training path (default callbacks) for residual-20 at the default settings: the
cumulative and own time per step of the parts that are not the net's arithmetic (instruments, logging, hooks).

    .venv/bin/python experiments/performance/step_before_after/cprofile_parts.py > cprofile_parts.txt

The first 5 steps and the end of training are outside the bench's timed window but inside this profile (the
figures drawn at step 0 and at the end: `_figures`); cProfile roughly doubles the cost of Python-heavy parts.
"""

from __future__ import annotations

import cProfile
import pstats
import tempfile

from reslab.bench.timing import time_reslab
from reslab.config import compose_config

STEPS, WARMUP = 100, 5
PARTS = (
    "monitors.py",
    "callbacks.py",
    "module.py:386(log)",
    "add_scalar",
    "add_histogram",
    "logger_connector.py",
    "run_backward",
    "_call_callback_hooks",
    "classifier.py",
    "optimizer.py:85(step)",
)


def main() -> None:
    cfg = compose_config(
        [
            "model=residual",
            "depth=20",
            f"trainer.max_steps={STEPS + WARMUP}",
            "trainer.val_check_interval=1000000",
            "trainer.limit_val_batches=0",
            "callbacks.checkpoint.every_n_train_steps=1000000",
        ],
        output_dir=tempfile.mkdtemp(),
    )
    profile = cProfile.Profile()
    profile.enable()
    seconds = time_reslab(cfg, with_instruments=True, warmup=WARMUP)
    profile.disable()
    print(f"{1000 * seconds:.2f} ms per step (the bench's window, under cProfile)")
    stats = pstats.Stats(profile).stats
    for (path, line, name), (_, calls, own, total, _) in sorted(stats.items(), key=lambda kv: -kv[1][3]):
        key = f"{path.split('/')[-1]}:{line}({name})"
        if any(part in key for part in PARTS) and total > 0.005:
            per_step = 1000 / (STEPS + WARMUP)
            print(f"{total * per_step:8.3f} ms/step cumulative {own * per_step:8.3f} own {calls:6d} calls  {key}")


if __name__ == "__main__":
    main()

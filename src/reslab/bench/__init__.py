"""Training speed beside the device's name and theoretical peak: a step, the paper's schedule, a sweep sharing a device.

Three modes: step (the default) times a training step of reslab against a plain PyTorch loop; job runs the
paper's ResNet-56 schedule as one whole job; share runs a sweep's jobs in series and several at a time.

    reslab bench [--depths 20 56 110] [--steps 12] [--warmup 3] [--out bench.json] [key=value ...]
    reslab bench --mode job [--project-steps N] [--run-dir DIR] [-- key=value ...]
    reslab bench --mode share [--jobs 4] [--skip-series] [--run-dir DIR] [-- key=value ...]

``--mode job`` and ``--mode share`` launch real ``reslab`` commands and read the jobs' records
(`whole_job`, `share`). The rest of this text is about step mode, the default.

Config overrides (``key=value``) go before ``--depths``/``--models``/``--paths`` or after ``--``: those options
take several values and would read an override that follows them as one of theirs.

Both paths train the same net on the same data (the config's dataset, batch 128, augmentation) with the same
precision, memory layout, compilation, optimiser and schedule, in the same process, after ``--warmup``
untimed steps (compilation and CUDA-graph capture happen there). reslab's path is timed with the default
callbacks and logging on, and again with the instruments off, to give their overhead; the instruments fire
every N steps, so the timed window must cover their periods (``--steps 300`` at the defaults) for that
overhead to include all of them. Each path is timed ``--repeats`` times in rotating order and the median is
reported. "of peak" divides the achieved FLOP rate by the hardware's theoretical peak in the training dtype
(CPU: cores × clock × FLOPs per cycle from the CPU's flags; GPU: the datasheet), printed with its derivation;
"of matmul" divides it by the measured rate of a large matrix product. Prints a table and writes JSON with
the machine's description. Not a test: timings vary.

Modules: `step` (step mode's loop, table and JSON), `whole_job` and `share` (the other modes), `timing` (the two
paths), `peak` (theoretical peak), `gpu_datasheets`, `matmul` (the measured reference), `flops` (multiply-adds per
image), `profiler` (``--profile``). The command line is `reslab.cli.bench`.
"""

from __future__ import annotations

from reslab.bench.flops import macs_per_image
from reslab.bench.peak import Peak, theoretical_peak
from reslab.bench.profiler import StepProfiler
from reslab.bench.timing import StepTimer, time_plain_loop, time_reslab

__all__ = [
    "Peak",
    "StepProfiler",
    "StepTimer",
    "macs_per_image",
    "theoretical_peak",
    "time_plain_loop",
    "time_reslab",
]

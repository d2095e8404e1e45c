#!/usr/bin/env bash
# The CPU benchmarks of this folder's README, from the repository root, after `make install`; nothing else
# should run on the machine meanwhile. About 30 minutes on the 2-core dev VM.
set -eu
PY=${PY:-.venv/bin/python}
OUT=experiments/performance
# reslab vs the plain loop, all depths and arms (the README's main table)
$PY -m reslab bench --steps 20 --repeats 3 --out $OUT/bench_cpu.json
# the framework's fixed cost per step: a tiny net (residual-8, width 4, batch 8), where it is most of the step
$PY -m reslab bench --depths 8 --models residual --paths loop bare --steps 200 --warmup 10 --repeats 3 \
    --out $OUT/bench_cpu_overhead.json dataset=synthetic dataset.batch_size=8 model.width=4 dataset.synthetic_train=4000
# the instruments' cost, timed part by part: 300 steps cover every periodic measurement and figure once
$PY $OUT/instrument_parts.py --steps 300 2>&1 | grep -v _pytree > $OUT/instrument_parts_cpu.txt
# and end to end (with against without)
$PY -m reslab bench --depths 20 56 --models residual --paths full bare --steps 300 --repeats 2 \
    --out $OUT/bench_cpu_instruments.json
# the optimiser step: torch's default SGD kernel against the fused one
$PY $OUT/optimizer_step.py cpu > $OUT/optimizer_step_cpu.txt
# bf16 autocast against fp32 at depth 56 (the plain loop alone; bf16 is emulated on this CPU)
$PY -m reslab bench --depths 56 --models residual --paths loop --steps 4 --repeats 1 \
    --out $OUT/bench_cpu_d56_bf16.json runtime.precision=bf16
$PY -m reslab bench --depths 56 --models residual --paths loop --steps 4 --repeats 1 \
    --out $OUT/bench_cpu_d56_fp32.json runtime.precision=32

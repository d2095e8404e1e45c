#!/usr/bin/env bash
# The CPU benchmarks of this folder's README, from the repository root, after `make install`; nothing else
# should run on the machine meanwhile. About 20 minutes on the 2-core dev VM.
set -eu
PY=${PY:-.venv/bin/python}
OUT=experiments/performance
# reslab vs the plain loop, all depths and arms (the README's main table)
$PY -m reslab.bench --steps 20 --repeats 3 --out $OUT/bench_cpu.json
# the instruments' amortised cost: 150 timed steps cover every periodic measurement and figure once
$PY -m reslab.bench --depths 20 56 --models residual --paths full bare --steps 150 --repeats 2 \
    --out $OUT/bench_cpu_instruments.json
# bf16 autocast against fp32 at depth 56 (the plain loop alone; bf16 is emulated on this CPU)
$PY -m reslab.bench --depths 56 --models residual --paths loop --steps 4 --repeats 1 \
    --out $OUT/bench_cpu_d56_bf16.json trainer.precision=bf16
$PY -m reslab.bench --depths 56 --models residual --paths loop --steps 4 --repeats 1 \
    --out $OUT/bench_cpu_d56_fp32.json trainer.precision=32

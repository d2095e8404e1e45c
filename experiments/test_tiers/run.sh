#!/usr/bin/env bash
# How long each test tier takes on this machine, from a quiet start: `make test` (the quick tier), then `make
# test-slow` (the rest, on TEST_WORKERS processes; as root it starts the SLURM test cluster). Writes timings.txt
# (wall seconds per tier) and each tier's pytest summary with its slowest tests beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=experiments/test_tiers
WORKERS=${TEST_WORKERS:-2}
{
  echo "# $(date -u +%F) $(git rev-parse --short HEAD) on $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p')"
  echo "# TEST_WORKERS=$WORKERS"
} > "$HERE/timings.txt"
make install >/dev/null
SECONDS=0
.venv/bin/python -m pytest -q --durations=15 > "$HERE/quick.txt" 2>&1 || echo "make_test failed: see quick.txt" >> "$HERE/timings.txt"
echo "make_test_s $SECONDS" >> "$HERE/timings.txt"
SECONDS=0
.venv/bin/python -m pytest -q -m slow -n "$WORKERS" --ignore=tests/test_slurm_cluster.py --durations=25 \
  > "$HERE/slow.txt" 2>&1 || echo "the slow tier's xdist part failed: see slow.txt" >> "$HERE/timings.txt"
echo "make_test_slow_xdist_part_s $SECONDS" >> "$HERE/timings.txt"
SECONDS=0
.venv/bin/python -m pytest -q -m slow tests/test_slurm_cluster.py --durations=15 \
  > "$HERE/slurm.txt" 2>&1 || echo "the SLURM module failed: see slurm.txt" >> "$HERE/timings.txt"
echo "make_test_slow_slurm_part_s $SECONDS" >> "$HERE/timings.txt"
cat "$HERE/timings.txt"

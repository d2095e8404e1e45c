#!/usr/bin/env bash
# How long each test tier takes on this machine, from a quiet start: `make test` (the quick tier), then the whole
# suite as `make test-all` runs it (every test on TEST_WORKERS xdist processes, then the SLURM cluster's module alone;
# as root it starts the cluster). Writes timings.txt (wall seconds) and each part's pytest summary with its
# slowest tests: quick.txt, all.txt (the xdist part) and slurm.txt (the SLURM module).
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
.venv/bin/python -m pytest -q -m "slow or not slow" -n "$WORKERS" --ignore=tests/test_slurm_cluster.py --durations=25 \
  > "$HERE/all.txt" 2>&1 || echo "the xdist part failed: see all.txt" >> "$HERE/timings.txt"
echo "make_test_all_xdist_part_s $SECONDS" >> "$HERE/timings.txt"
SECONDS=0
.venv/bin/python -m pytest -q -m slow tests/test_slurm_cluster.py --durations=15 \
  > "$HERE/slurm.txt" 2>&1 || echo "the SLURM module failed: see slurm.txt" >> "$HERE/timings.txt"
echo "make_test_all_slurm_part_s $SECONDS" >> "$HERE/timings.txt"
cat "$HERE/timings.txt"

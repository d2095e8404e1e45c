#!/usr/bin/env bash
# How long each test tier takes on this machine, from a quiet start: `make test` (the quick tier), then the whole
# suite as `make test-all` runs it (every test on TEST_WORKERS xdist processes, then the SLURM cluster's module alone;
# as root it starts the cluster). Writes timings.txt (wall seconds, and the CPU-seconds the whole machine was busy
# and idle meanwhile, from /proc/stat) and each part's pytest summary with its slowest tests: quick.txt, all.txt
# (the xdist part) and slurm.txt (the SLURM module).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=experiments/test_tiers
WORKERS=${TEST_WORKERS:-2}
XDIST=(-n "$WORKERS")
{
  echo "# $(date -u +%F) $(git rev-parse --short HEAD) on $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p')"
  echo "# TEST_WORKERS=$WORKERS"
} > "$HERE/timings.txt"
make install >/dev/null

cpu() {  # busy and idle CPU-seconds of the whole machine so far
  read -r _ user nice system idle iowait irq softirq steal _ < /proc/stat
  echo $(((user + nice + system + irq + softirq + steal) / 100)) $(((idle + iowait) / 100))
}

part() {  # part NAME OUTPUT pytest-args...: run one part, then write its wall and CPU seconds
  local name=$1 out=$2
  shift 2
  local before after
  read -r -a before <<< "$(cpu)"
  SECONDS=0
  .venv/bin/python -m pytest -q "$@" > "$HERE/$out" 2>&1 || echo "# $name failed: see $out" >> "$HERE/timings.txt"
  local wall=$SECONDS
  read -r -a after <<< "$(cpu)"
  echo "$name $wall busy_cpu_s=$((after[0] - before[0])) idle_cpu_s=$((after[1] - before[1]))" >> "$HERE/timings.txt"
}

part make_test_s quick.txt "${XDIST[@]}" --durations=15
part make_test_all_xdist_part_s all.txt -m "slow or not slow" "${XDIST[@]}" --ignore=tests/test_slurm_cluster.py \
  --durations=25
part make_test_all_slurm_part_s slurm.txt -m slow tests/test_slurm_cluster.py --durations=15
cat "$HERE/timings.txt"

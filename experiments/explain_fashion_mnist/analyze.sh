#!/usr/bin/env bash
# Issue 14's study, analysis part: the four analyses over a finished sweep folder, then its report (which shows them).
#   bash experiments/explain_fashion_mnist/analyze.sh                          # the CPU study (train.sh), defaults
#   SWEEP=<28x28 sweep> LESION="--images 500" LANDSCAPE="--images 128" bash experiments/explain_fashion_mnist/analyze.sh
# Each analysis leaves out, and lists, the runs that cannot be analysed (diverged; plain nets for paths): exit 0.
set -uo pipefail
SWEEP=${SWEEP:-/tmp/reslab_explain}
# shellcheck disable=SC2086  # the option strings are split on purpose
for analysis in "lesion ${LESION:-}" "landscape ${LANDSCAPE:-}" "shattered ${SHATTERED:-}" "paths ${PATHS_OPTS:-}"; do
  start=$(date +%s.%N)
  .venv/bin/reslab analyze $analysis "$SWEEP" --device cpu
  echo "reslab analyze $analysis: exit $?, $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s" >&2
done
.venv/bin/reslab report "$SWEEP" > /dev/null

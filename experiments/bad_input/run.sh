#!/usr/bin/env bash
# Every bad-input case of tests/test_bad_input.py as a real process, and the one line reslab prints for each:
# rewrites the table in README.md here (below its marker line). A few minutes on the 2-core dev VM.
#   bash experiments/bad_input/run.sh          # from the repository root, after make install
set -euo pipefail
"${PY:-.venv/bin/python}" experiments/bad_input/make_table.py

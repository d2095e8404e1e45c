"""Runs every bad-input case of tests/test_bad_input.py as a real `python run.py` process and writes the
table of messages to experiments/bad_input/README.md.

    .venv/bin/python experiments/bad_input/make_table.py
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

from test_bad_input import CASES, PREFLIGHT_CASES, run, setup_files  # noqa: E402


def main() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), CUDA_VISIBLE_DEVICES="")
    rows = ["| input | command (after the tiny test settings) | exit | the one line printed |", "|---|---|---|---|"]
    for case, args, _ in CASES + PREFLIGHT_CASES:
        with tempfile.TemporaryDirectory() as tmp:
            setup_files(case, Path(tmp))
            proc = run(args, Path(tmp), env)
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            shown = lines[0].replace(tmp, "<tmp>") if len(lines) == 1 else f"{len(lines)} lines!"
            command = " ".join(a.replace("{tmp}", "<tmp>").replace("{ro}", "/proc/reslab") for a in args)
            rows.append(f"| {case} | `{command}` | {proc.returncode} | `{shown}` |")
            print(rows[-1], flush=True)
    text = (__doc__.split("\n\n")[0].replace("Runs", "Made by running") + "\n\n"
            "    .venv/bin/python experiments/bad_input/make_table.py\n\n" + "\n".join(rows) + "\n")
    (Path(__file__).parent / "README.md").write_text("# Bad input: what reslab prints\n\n" + text)


if __name__ == "__main__":
    main()

"""Runs every bad-input case of tests/test_bad_input.py as a real `python run.py` process and writes the
table of messages into experiments/bad_input/README.md, below its marker line (MARKER); the text above it is kept.

    .venv/bin/python experiments/bad_input/make_table.py
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

from conftest import TINY  # noqa: E402
from test_bad_input import CASES, PREFLIGHT_CASES, run, setup_files  # noqa: E402

from reslab.config import compose_config  # noqa: E402
from reslab.job import train  # noqa: E402

README = Path(__file__).parent / "README.md"
MARKER = "<!-- make_table.py writes everything below this line -->"


def main() -> None:
    if MARKER not in README.read_text():
        raise SystemExit(f"make_table.py: {README} has no line {MARKER!r}; add it where the table goes")
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
    with tempfile.TemporaryDirectory() as tmp:  # a checkpoint of plain-8 offered to a 14-layer run
        cfg = compose_config(TINY + ["model=plain"], output_dir=Path(tmp) / "plain")
        train(cfg)
        ckpt = Path(tmp) / "plain" / "checkpoints" / "last.ckpt"
        proc = run(["depth=14", "model=plain", f"resume={ckpt}"], Path(tmp), env)
        line = proc.stderr.strip().splitlines()[-1].replace(tmp, "<tmp>")
        rows.append(
            f"| checkpoint of another depth | `depth=14 model=plain resume=<plain-8's last.ckpt>` | "
            f"{proc.returncode} | `{line}` |"
        )
    with tempfile.TemporaryDirectory() as tmp:  # a finished plain-8 directory rerun with another lr
        train(compose_config(TINY + ["model=plain"], output_dir=Path(tmp) / "job"))
        proc = run(["model=plain", "optim.lr=0.05", f"hydra.run.dir={tmp}/job"], Path(tmp), env)
        line = proc.stderr.strip().splitlines()[-1].replace(tmp, "<tmp>")
        rows.append(
            f"| directory of another experiment | `model=plain optim.lr=0.05` into a finished lr-0.1 run's "
            f"directory | {proc.returncode} | `{line}` |"
        )
    with tempfile.TemporaryDirectory() as tmp:  # a checkpoint whose unpickling would call a function
        import torch

        crafted = Path(tmp) / "crafted.ckpt"
        torch.save({"x": Path(tmp)}, crafted)  # any object beyond tensors and containers is refused
        proc = run([f"resume={crafted}"], Path(tmp), env)
        line = proc.stderr.strip().splitlines()[-1].replace(tmp, "<tmp>")
        rows.append(
            f"| checkpoint that could run code | `resume=<a file holding a Python object>` | "
            f"{proc.returncode} | `{line}` |"
        )
    write_table(rows)


def write_table(rows: list[str]) -> None:
    """The table replaces everything below README.md's marker line; the hand-written text above it stays."""
    head, found, _ = README.read_text().partition(MARKER)
    if not found:
        raise SystemExit(f"make_table.py: {README} has no line {MARKER!r}; add it where the table goes")
    README.write_text(head + MARKER + "\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()

"""Checks on the command line before Hydra starts, so that common mistakes get one line instead of a
Hydra traceback: an unknown config option (``model=foo``, ``dataset=cifar11``) and an output directory
that cannot be written (Hydra creates it before any of reslab's code runs)."""

from __future__ import annotations

from pathlib import Path

from reslab.config import parse_overrides
from reslab.errors import UserError
from reslab.paths import ensure_writable_dir

GROUP_NAMES = {"model": "model", "dataset": "dataset", "optim": "optimiser", "trainer": "trainer",
               "experiment": "experiment"}


def check_groups(argv: list[str], conf_dir: Path) -> None:
    for o in parse_overrides(argv):
        group = o.key_or_group
        if group not in GROUP_NAMES or o.is_delete():
            continue
        options = sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))
        values = list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()]
        for value in values:
            if str(value) not in options and value is not None:
                raise UserError(f"unknown {GROUP_NAMES[group]} {value!r}; choose one of: {', '.join(options)}")


def check_output_dir(argv: list[str]) -> None:
    multirun = "-m" in argv or "--multirun" in argv
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    target = Path("multirun" if multirun else "outputs")
    for o in parse_overrides(argv):
        if o.key_or_group == key:
            value = str(o.value())
            # Interpolations (${now:...}) are resolved by Hydra later; check the literal folder above them.
            target = Path(value) if "${" not in value else Path(value.split("${")[0] or ".").parent
    try:
        ensure_writable_dir(target)
    except OSError as e:
        raise UserError(f"cannot write the output directory {target} ({e.strerror}); "
                        f"run from a writable folder or set {key}=<a writable path>") from None


def preflight(argv: list[str], conf_dir: Path) -> None:
    if any(a in ("-h", "--help", "--hydra-help", "--info", "-c", "--cfg") for a in argv):
        return
    check_groups(argv, conf_dir)
    check_output_dir(argv)

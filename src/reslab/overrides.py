"""The command line's ``key=value`` overrides, checked before Hydra starts: every swept value composes against the
typed schema and its ranges, config group options exist, the output directory can be written. So a common mistake
gets one line instead of a Hydra traceback, before any job starts. Used by ``reslab`` and by ``reslab bench``.
"""

from __future__ import annotations

from pathlib import Path

from reslab.config import compose_config, group_options, parse_overrides
from reslab.errors import UserError
from reslab.files import ensure_writable_dir
from reslab.schema import check_values

# Config groups checked before Hydra starts, with the word used in the error line.
GROUP_NAMES = {
    "model": "model",
    "dataset": "dataset",
    "optim": "optimiser",
    "trainer": "trainer",
    "experiment": "experiment",
    "debug": "debug preset",
    "hparams_search": "hyperparameter search",
    "logger": "logger",
}
HYDRA_INFO_FLAGS = ("-h", "--help", "--hydra-help", "--info", "-c", "--cfg", "--shell-completion", "-sc")


def sets_key(argv: list[str], key: str) -> bool:
    return any(o.key_or_group == key for o in parse_overrides(argv))


def preflight(argv: list[str]) -> None:
    """Checks before Hydra starts, so common mistakes get one line instead of a Hydra traceback: an unknown
    config option (``model=foo``) and an output directory that cannot be written (Hydra creates it before any
    of reslab's code runs)."""
    multirun = "-m" in argv or "--multirun" in argv
    if multirun and any(a in ("-c", "--cfg", "--info") for a in argv):
        raise UserError("--cfg and --info show one composed config: drop -m and give each key a single value")
    if any(a in HYDRA_INFO_FLAGS for a in argv):
        return
    if not multirun and (sweeps := [o.input_line for o in parse_overrides(argv) if o.is_sweep_override()]):
        raise UserError(f"{sweeps[0]} lists several values: add -m to run one job for each, or give one value")
    check_groups(argv)
    check_search(argv, multirun)
    check_output_dir(argv)
    check_composes(argv)


def check_groups(argv: list[str]) -> None:
    for o in parse_overrides(argv):
        group = o.key_or_group
        if group not in GROUP_NAMES or o.is_delete():
            continue
        options = group_options(group)
        values = list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()]
        for value in values:
            for item in value if isinstance(value, list) else [value]:  # logger=[tensorboard,mlflow]: several
                if str(item) not in options and item is not None:
                    raise UserError(f"unknown {GROUP_NAMES[group]} {item!r}; choose one of: {', '.join(options)}")


def check_search(argv: list[str], multirun: bool) -> None:
    """``hparams_search`` is a sweep of many jobs, run by an optional sweeper."""
    if not any(o.key_or_group == "hparams_search" and o.value() is not None for o in parse_overrides(argv)):
        return
    if not multirun:
        raise UserError("hparams_search runs a search of many jobs: add -m")
    try:
        import hydra_plugins.hydra_optuna_sweeper  # noqa: F401
    except ImportError:
        raise UserError("hparams_search needs the Optuna sweeper: pip install 'reslab[tune]'") from None


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
        raise UserError(
            f"cannot write the output directory {target} ({e.strerror}); "
            f"run from a writable folder or set {key}=<a writable path>"
        ) from None


def check_composes(argv: list[str]) -> None:
    """Compose every value of every swept key (with the other keys at their first value) against the typed
    schema, and check the ranges, so a wrong type, an unknown key or a value out of range gets one line before
    any job starts."""
    from hydra.errors import ConfigCompositionException

    overrides = [o for o in parse_overrides(argv) if not o.key_or_group.startswith("hydra")]

    def as_arg(o, value) -> str:
        return f"{o.get_key_element()}={o.get_value_element_as_str() if value is None else value}"

    first = {o.key_or_group: (sweep_values(o)[0] if o.is_sweep_override() else None) for o in overrides}
    base = [as_arg(o, first[o.key_or_group]) for o in overrides]
    trials = [base] + [
        [*base[:i], as_arg(o, v), *base[i + 1 :]]
        for i, o in enumerate(overrides)
        if o.is_sweep_override()
        for v in sweep_values(o)[1:]
    ]
    for args in trials:
        try:
            check_values(compose_config(args, output_dir="."))
        except ConfigCompositionException as e:
            raise UserError(composition_error(e)) from None


def sweep_values(o) -> list[str]:
    """The values a swept override takes; a sweeper's search range (``optim.lr='tag(log,interval(0.01,1))'``,
    which only a sweeper such as Optuna's enumerates) by its two ends."""
    if o.is_interval_sweep():
        return [str(o.value().start), str(o.value().end)]
    return list(o.sweep_string_iterator())


def composition_error(e: Exception) -> str:
    """Hydra's composition error and its cause on one line, with how to fix it."""
    cause = e.__cause__
    detail = str(cause).splitlines()[0] if cause is not None and str(cause) else ""
    what = str(e).splitlines()[0].rstrip(".")
    return (
        f"{what}: {detail}; see the key's type and options with: reslab --cfg job"
        if detail
        else f"{what}; see the keys with: reslab --cfg job"
    )

"""The ``reslab`` command (also ``python -m reslab`` and ``python run.py``).

    reslab [-m] key=value ...              train one run, or with -m sweep every combination (Hydra)
    reslab report SWEEP_DIR                the sweep's tables and figures
    reslab bench [options] [key=value]     training speed: one step, the paper's schedule, jobs sharing a device
    reslab analyze KIND DIR [options]      lesion, landscape, shattered or paths analysis of finished runs

A sub-command is the first word; anything else goes to Hydra (``reslab run ...`` says the same explicitly).
`UserError` reaches the user as one line and exit status 2. In a multirun a failed job is recorded in its
``metrics.json`` (``error.log`` keeps the traceback), the sweep goes on, and the command exits 1 at the end.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

from reslab.config import conf_dir, group_options, parse_overrides, swept_keys
from reslab.errors import UserError
from reslab.files import ensure_writable_dir

# Config groups checked before Hydra starts, with the word used in the error line.
GROUP_NAMES = {
    "model": "model",
    "dataset": "dataset",
    "optim": "optimiser",
    "trainer": "trainer",
    "experiment": "experiment",
    "debug": "debug preset",
    "hparams_search": "hyperparameter search",
}
HYDRA_INFO_FLAGS = ("-h", "--help", "--hydra-help", "--info", "-c", "--cfg", "--shell-completion", "-sc")


def _report(argv: list[str]) -> int:
    from reslab.results.report import main

    return main(argv)


def _bench(argv: list[str]) -> int:
    from reslab.bench import main

    return main(argv)


def _analyze(argv: list[str]) -> int:
    from reslab.analysis.cli import main

    return main(argv)


# Each sub-command takes the rest of the command line and returns the exit status.
COMMANDS: dict[str, Callable[[list[str]], int]] = {"report": _report, "bench": _bench, "analyze": _analyze}


def main(argv: list[str] | None = None) -> int:
    """Entry point of every way to start reslab; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    if argv and argv[0] == "run":
        argv = argv[1:]
    if argv and argv[0] in ("--version", "-V"):
        from reslab import __version__

        print(f"reslab {__version__}")
        return 0
    try:
        preflight(argv)
        return run_hydra(argv)
    except UserError as e:  # raised by the checks before any job starts
        print(f"reslab: error: {e}", file=sys.stderr)
        return 2


def run_hydra(argv: list[str]) -> int:
    """Hand the command line to Hydra; in a multirun, record the swept keys in every job's config."""
    import hydra

    from reslab.cli.hydra_app import JobRunner
    from reslab.training.signals import Interrupted, sweep_stopping

    multirun = "-m" in argv or "--multirun" in argv
    sweep = None
    if multirun:
        if (keys := swept_keys(argv)) and not _sets(argv, "sweep_keys"):
            argv = [*argv, f"sweep_keys=[{','.join(keys)}]"]
        # Resolved once, here: the exit status is read from the jobs' records there, whichever process ran them.
        sweep_dir, launcher = resolved_sweep(argv)
        sweep = Path(sweep_dir)
        argv = [a for a in argv if not a.startswith("hydra.sweep.dir=")] + [f"hydra.sweep.dir={sweep}"]
        if launcher in WATCHED_LAUNCHERS:  # submitit's launchers, watching every job to its end (cli/launchers.py)
            argv.append(f"hydra.launcher._target_={WATCHED_LAUNCHERS[launcher]}")
        check_launcher_installed(WATCHED_LAUNCHERS.get(launcher, launcher))
    runner = JobRunner()
    app = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")(runner.run)
    sys.argv = [sys.argv[0] if sys.argv else "reslab", *argv]  # hydra.main reads the command line from here
    try:
        with stop_signals_for_sweep(sweep):
            app()
            signum = sweep_stopping(sweep) if sweep is not None else None
    except Interrupted as stopped:
        return report_interruption(stopped.signum, stopped.job_dir, sweep=None)
    if signum is not None:
        return report_interruption(signum, None, sweep=sweep)
    if sweep is not None:
        return sweep_exit_code(sweep) or runner.exit_code
    return runner.exit_code


@contextlib.contextmanager
def stop_signals_for_sweep(sweep: Path | None):
    """While a sweep runs, SIGTERM and SIGINT reaching this process stop the sweep (`SweepStop`): no new job starts,
    the launcher's workers and cluster jobs checkpoint and stop; a job training in this process takes the signals
    itself meanwhile and passes them on (`StopOnSignal`). A rerun of the same command starts over."""
    import signal

    from reslab.training.signals import STOP_MARKER, SweepStop

    if sweep is None:
        yield
        return
    (sweep / STOP_MARKER).unlink(missing_ok=True)
    on_signal = SweepStop(sweep)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        (sweep / STOP_MARKER).unlink(missing_ok=True)


# Hydra's submitit launchers and reslab's own, which submit the same way and see every job to its end.
_SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher."
WATCHED_LAUNCHERS = {
    _SUBMITIT + "SlurmLauncher": "hydra_plugins.reslab_launchers.SlurmLauncher",
    _SUBMITIT + "LocalLauncher": "hydra_plugins.reslab_launchers.LocalLauncher",
}


def check_launcher_installed(target: str) -> None:
    """reslab's own launchers are Hydra plugins (src/hydra_plugins), which Hydra finds only on the import path: an
    editable install in setuptools' default mode hides them from Hydra's scan."""
    if not target.startswith("hydra_plugins.reslab_launchers."):
        return
    from hydra.core.plugins import Plugins

    if target not in Plugins.instance().class_name_to_class:
        raise UserError(
            f"Hydra cannot see reslab's launcher {target}: reinstall with `make install` or "
            "`pip install -e . --config-settings editable_mode=compat` (or a plain `pip install .`)"
        )


def resolved_sweep(argv: list[str]) -> tuple[str, str]:
    """The sweep directory this launch will use, with ``${now:...}`` resolved, and its launcher's class."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    given = [a for a in argv if a.startswith(("hydra.sweep.dir=", "hydra/launcher=", "hydra.launcher._target_="))]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=given, return_hydra_config=True)
    return str(OmegaConf.select(cfg, "hydra.sweep.dir")), str(OmegaConf.select(cfg, "hydra.launcher._target_"))


def sweep_exit_code(sweep: Path) -> int:
    """1 if any job of the sweep did not end (failed, died, still running), from the jobs' own records: a launcher
    may run them in other processes or on other machines, where a failure never reaches this one's memory."""
    from reslab.results.runs import load_sweep

    unfinished = [r.path.name for r in load_sweep(sweep) if r.status not in ("finished", "diverged")]
    if unfinished:
        print(f"reslab: {len(unfinished)} job(s) of {sweep} did not finish: {', '.join(unfinished)}", file=sys.stderr)
    return 1 if unfinished else 0


def report_interruption(signum: int, job_dir: Path | None, sweep: Path | None) -> int:
    """After SIGTERM/SIGINT: a single run's checkpoint, or the sweep's report as it stands and which jobs did not
    finish; exit 128 + signal."""
    import signal

    name = signal.Signals(signum).name
    if job_dir is not None:
        print(
            f"reslab: {job_dir.name} stopped by {name}; its checkpoint is saved, and the same command resumes it",
            file=sys.stderr,
        )
    if sweep is not None:
        from reslab.cli.hydra_app import SweepReport
        from reslab.results.runs import load_sweep

        SweepReport.write(sweep, figures=False, quiet=True)
        stopped = [r.path.name for r in load_sweep(sweep) if r.status == "interrupted"]
        unfinished = [r.path.name for r in load_sweep(sweep) if r.status != "finished"]
        if stopped:
            print(f"reslab: stopped by {name}, checkpointed: {', '.join(stopped)}", file=sys.stderr)
        print(
            f"reslab: sweep {sweep} interrupted; jobs not finished: {', '.join(unfinished) or 'none'}, and any "
            f"not started yet; rerun the same command with hydra.sweep.dir={sweep} to complete them",
            file=sys.stderr,
        )
    return 128 + signum


def _sets(argv: list[str], key: str) -> bool:
    return any(o.key_or_group == key for o in parse_overrides(argv))


def preflight(argv: list[str]) -> None:
    """Checks before Hydra starts, so common mistakes get one line instead of a Hydra traceback: an unknown
    config option (``model=foo``) and an output directory that cannot be written (Hydra creates it before any
    of reslab's code runs)."""
    multirun = "-m" in argv or "--multirun" in argv
    if argv and "=" not in argv[0] and not argv[0].startswith("-"):
        raise UserError(f"unknown command {argv[0]!r}; choose one of: run, {', '.join(COMMANDS)} (reslab --help)")
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
            if str(value) not in options and value is not None:
                raise UserError(f"unknown {GROUP_NAMES[group]} {value!r}; choose one of: {', '.join(options)}")


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

    from reslab.config import compose_config
    from reslab.schema import check_ranges

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
            check_ranges(compose_config(args, output_dir="."))
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

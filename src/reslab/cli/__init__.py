"""The ``reslab`` command (also ``python -m reslab`` and ``python run.py``).

    reslab [-m] key=value ...              train one run, or with -m sweep every combination (Hydra)
    reslab report SWEEP_DIR                the sweep's tables and figures
    reslab bench [options] [key=value]     training speed: one step, the paper's schedule, jobs sharing a device
    reslab analyze KIND DIR [options]      lesion, landscape, shattered or paths analysis of finished runs
    reslab status SWEEP_DIR                each job's status and what rerunning the sweep will do

A sub-command is the first word; anything else goes to Hydra (``reslab run ...`` says the same explicitly).
`UserError` reaches the user as one line and exit status 2. In a multirun a failed job is recorded in its
``metrics.json`` (``error.log`` keeps the traceback), the sweep goes on, and the command exits 1 at the end.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

from reslab.config import conf_dir, swept_keys
from reslab.errors import UserError
from reslab.overrides import preflight, sets_key


def _report(argv: list[str]) -> int:
    from reslab.cli.report import main

    return main(argv)


def _bench(argv: list[str]) -> int:
    from reslab.cli.bench import main

    return main(argv)


def _analyze(argv: list[str]) -> int:
    from reslab.cli.analyze import main

    return main(argv)


def _status(argv: list[str]) -> int:
    from reslab.cli.status import main

    return main(argv)


# Each sub-command takes the rest of the command line and returns the exit status.
COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "report": _report,
    "bench": _bench,
    "analyze": _analyze,
    "status": _status,
}


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
        if argv and "=" not in argv[0] and not argv[0].startswith("-"):
            raise UserError(f"unknown command {argv[0]!r}; choose one of: run, {', '.join(COMMANDS)} (reslab --help)")
        preflight(argv)
        return run_hydra(argv)
    except UserError as e:  # raised by the checks before any job starts
        print(f"reslab: error: {e}", file=sys.stderr)
        return 2


def run_hydra(argv: list[str]) -> int:
    """Hand the command line to Hydra; in a multirun, record the swept keys in every job's config."""
    import hydra

    from reslab.cli.hydra_app import JobRunner
    from reslab.signals import Interrupted, sweep_stopping

    multirun = "-m" in argv or "--multirun" in argv
    sweep = None
    if multirun:
        if (keys := swept_keys(argv)) and not sets_key(argv, "sweep_keys"):
            argv = [*argv, f"sweep_keys=[{','.join(keys)}]"]
        # Resolved once, here: the exit status is read from the jobs' records there, whichever process ran them.
        sweep_dir, launcher = resolved_sweep(argv)
        sweep = Path(sweep_dir)
        argv = [a for a in argv if not a.startswith("hydra.sweep.dir=")] + [f"hydra.sweep.dir={sweep}"]
        if launcher in WATCHED_LAUNCHERS:  # reslab's in place of Hydra's (below)
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
    """While a sweep runs, SIGTERM, SIGINT and the preemption signal reaching this process stop the sweep
    (`SweepStop`): no new job starts, the launcher's workers and cluster jobs checkpoint and stop; a job training in
    this process takes the signals itself meanwhile and passes them on (`StopOnSignal`). A rerun of the same command
    starts over."""
    import signal

    from reslab.signals import STOP_MARKER, SweepStop, preemption_signal

    if sweep is None:
        yield
        return
    (sweep / STOP_MARKER).unlink(missing_ok=True)
    on_signal = SweepStop(sweep)
    # The preemption signal too: a scheduler that preempts the allocation running the sweep's command sends it
    # there, and its default action killed the command and left the workers' jobs unwatched (tools/chaos.py).
    watched = (signal.SIGTERM, signal.SIGINT, preemption_signal())
    previous = {s: signal.signal(s, on_signal) for s in watched}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        (sweep / STOP_MARKER).unlink(missing_ok=True)


# Hydra's launchers and reslab's own in their place: the submitit ones submit the same way and see every job to its
# end (cli/launchers.py); the basic and joblib ones run jobs as Hydra's do, and no job takes the sweep down with it
# (cli/launchers_local.py).
_SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher."
_JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher."
WATCHED_LAUNCHERS = {
    _SUBMITIT + "SlurmLauncher": "hydra_plugins.reslab_launchers.SlurmLauncher",
    _SUBMITIT + "LocalLauncher": "hydra_plugins.reslab_launchers.LocalLauncher",
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher": "hydra_plugins.reslab_launchers.BasicLauncher",
    _JOBLIB + "JoblibLauncher": "hydra_plugins.reslab_launchers.JoblibLauncher",
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
    from reslab.cli.status import expected_jobs
    from reslab.results.runs import load_sweep

    runs = load_sweep(sweep, series=False)
    unfinished = [r.path.name for r in runs if r.status not in ("finished", "diverged")]
    if unfinished:
        print(f"reslab: {len(unfinished)} job(s) of {sweep} did not finish: {', '.join(unfinished)}", file=sys.stderr)
    # A job that never wrote a record (its setup failed, or it never started) is counted from the launch's own list.
    missing = max(0, (expected_jobs(sweep) or 0) - len(runs))
    if missing:
        print(f"reslab: {missing} job(s) of {sweep} have no record; rerun the same command to run them",
              file=sys.stderr)  # fmt: skip
    return 1 if unfinished or missing else 0


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

#!/usr/bin/env python
"""Chaos: seeded random faults across whole sweeps, and the same results at the end.

    .venv/bin/python tools/chaos.py --seed 7 --faults 120        # three launchers and a search, 30 faults each
    .venv/bin/python tools/chaos.py --seed 7 --faults 20 --launchers joblib --keep /tmp/chaos

For each launcher, first an undisturbed reference sweep of 12 tiny jobs (depths 8 and 14, plain and residual, seeds
0 to 2; ``search``: an Optuna search of the lr with 12 trials, whose study must end as the undisturbed one's). Then
the same command into another folder, again and again: every launch gets one or two faults at random moments of a
seeded schedule, and after it the user's action, the same command again. Between launches no process of
the sweep is left (the harness waits for them, as a user would see them end). The contract is checked after every
launch; when a round's faults are spent, launches without faults must complete the sweep, and its summary.csv and
every job's metrics and curves must be the reference's, byte for byte. Each round starts a fresh folder, so faults
keep landing on training rather than on a finished sweep. ``tests/test_chaos.py`` runs it in the slow tier.

The faults (`KINDS`): SIGKILL, SIGTERM, SIGINT and the preemption signal (SIGUSR2, submitit's) to a job's process
(the pid in its lock), to a launcher worker (any process under the launching one) and to the launching process; a
second launch of the same command while the first runs; a full filesystem for a few seconds (a size-limited tmpfs
mounted for the sweep, so root only; the kind is left out otherwise, and said so); SIGKILL and SIGTERM to the
launching process once every job has ended (while it writes the report).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOBS = 12
MAX_STEPS = 40
TINY = ["debug=tiny", f"trainer.max_steps={MAX_STEPS}", "callbacks.grad_norms.figure_every_n_steps=0",
        "callbacks.responses.figure_every_n_steps=0"]  # fmt: skip
GRID = ["depth=8,14", "model=plain,residual", "seed=0,1,2"]
# The sweeps, by their launcher; "search" is an Optuna search of the lr (JOBS trials, one at a time) under the basic
# launcher, whose rerun must resume its study (reslab.cli.tuning).
LAUNCHERS = {
    "basic": GRID,
    "joblib": [*GRID, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"],
    "submitit_local": [*GRID, "hydra/launcher=submitit_local"],
    "search": ["hparams_search=lr", f"hydra.sweeper.n_trials={JOBS}"],
}
IN_LAUNCHER = ("basic", "search")  # the jobs train in the launching process: no worker, a job's signal is the sweep's
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "preempt": signal.SIGUSR2}
KINDS = [f"{s} to {t}" for t in ("job", "worker", "launcher") for s in SIGNALS]
KINDS += ["second launch", "disk full", "SIGKILL during report", "SIGTERM during report"]
SIGNAL_KILLED = lambda rc: rc is not None and rc < 0  # noqa: E731 (killed outright: no chance to print anything)
RESULT_KEYS = ("status", "steps", "train_error", "val_error", "test_error", "diverged_at_step", "identity")


def kinds_for(launcher: str, can_fill_disk: bool) -> list[str]:
    """Under the basic launcher the jobs train in the launching process: there is no worker."""
    return [k for k in KINDS if not (launcher in IN_LAUNCHER and k.endswith("to worker"))
            and (can_fill_disk or k != "disk full")]  # fmt: skip


def say(line: str) -> None:
    print(line, flush=True)


@dataclass
class Launch:
    proc: subprocess.Popen
    started: float
    log: Path
    seen: dict = field(default_factory=dict)  # pid -> psutil.Process: every process seen under the launching one
    faults: list[str] = field(default_factory=list)  # delivered

    def watch(self) -> None:
        import psutil

        try:
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(p.pid, p)
        except psutil.Error:
            pass


class Chaos:
    def __init__(self, work: Path, launcher: str, rng: random.Random, log=say, logs: Path | None = None):
        self.work, self.launcher, self.rng, self.log = Path(work), launcher, rng, log
        self.logs = logs or self.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.launches = 0
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.reference: Path | None = None
        self.duration = 60.0
        self.violations: list[str] = []
        self.counts: dict[str, int] = {}
        self.orphans = 0  # idle processes of a killed launch, left behind by it and killed by the harness
        self.known: dict[str, int] = {}  # where reslab does not keep the contract, named (docs/runs-and-failures.md)
        self.done: Path | None = None  # where finished sweeps go, off the small filesystem (`put_away`)

    def command(self, sweep: Path) -> list[str]:
        return [sys.executable, "-m", "reslab", "-m", *TINY, *LAUNCHERS[self.launcher], f"hydra.sweep.dir={sweep}"]

    def start(self, sweep: Path) -> Launch:
        """Launch the sweep's command in a session of its own; its stderr goes to ``<work>/logs/`` (kept off the
        small filesystem, so a full disk does not eat the evidence)."""
        self.launches += 1
        path = self.logs / f"{sweep.name}-{self.launches:03d}.err"
        err = open(path, "wb")
        proc = subprocess.Popen(self.command(sweep), cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)  # fmt: skip
        err.close()
        return Launch(proc, time.monotonic(), path)

    def finish(self, launch: Launch, timeout: float = 300) -> int:
        """Wait for the launching process, then for every process seen under it that still trains a job (a worker
        whose parent was killed finishes the job it is on). Idle leftovers (loky keeps an orphaned idle worker up to
        its 300 s idle timeout) are killed and counted, as a user would; one that trains past ``timeout`` is a
        violation."""
        import psutil

        end = time.monotonic() + timeout
        while launch.proc.poll() is None and time.monotonic() < end:
            launch.watch()
            time.sleep(0.1)
        if launch.proc.poll() is None:
            self.violations.append(f"{self.launcher}: a launch did not end within {timeout:.0f} s; see {launch.log}")
            launch.proc.kill()
        launch.proc.wait()
        while time.monotonic() < end and set(job_pids(self.work.glob("*"))) & set(launch.seen):
            time.sleep(0.2)
        _, alive = psutil.wait_procs(list(launch.seen.values()), timeout=5)  # a normal shutdown's last moments
        if set(job_pids(self.work.glob("*"))) & {p.pid for p in alive}:
            self.violations.append(f"{self.launcher}: a job outlived its launch by {timeout:.0f} s; see {launch.log}")
        for p in alive:
            self.orphans += 1
            p.kill()
        psutil.wait_procs(alive, timeout=10)
        return launch.proc.returncode

    def reference_sweep(self) -> None:
        self.reference = self.work / f"{self.launcher}-reference"
        launch = self.start(self.reference)
        rc = self.finish(launch)
        self.duration = time.monotonic() - launch.started
        if rc != 0:
            raise RuntimeError(f"the undisturbed {self.launcher} sweep exited {rc}; nothing to compare with")
        self.log(f"{self.launcher}: reference sweep {self.duration:.0f} s")

    # -- faults -------------------------------------------------------------------------------------------------

    def deliver(self, kind: str, launch: Launch, sweep: Path, fs: Path | None) -> bool:
        """Deliver one fault to the running launch; False if its moment never came (the launch ended first)."""
        import psutil

        if kind.endswith("during report"):
            while launch.proc.poll() is None and ended_jobs(sweep) < JOBS:
                launch.watch()
                time.sleep(0.05)
            time.sleep(self.rng.uniform(0, 0.5))
            return signal_process(launch.proc.pid, SIGNALS[kind.split()[0]])
        if kind == "second launch":
            second = self.start(sweep)
            self.finish(second)
            return True
        if kind == "disk full":
            filler = fs / "filler"
            try:
                with open(filler, "wb") as f:
                    while True:
                        f.write(b"\0" * (1 << 20))
            except OSError:
                pass  # full: that is the point
            time.sleep(self.rng.uniform(1, 4))
            filler.unlink(missing_ok=True)
            return True
        name, target = kind.split(" to ")
        if target == "launcher":
            return signal_process(launch.proc.pid, SIGNALS[name])
        if target == "job":
            pids = job_pids(sweep)
        else:
            launch.watch()
            pids = [p for p, proc in launch.seen.items() if proc.is_running()]
        pids = [p for p in pids if psutil.pid_exists(p)]
        return bool(pids) and signal_process(self.rng.choice(sorted(pids)), SIGNALS[name])

    def round(self, name: str, faults: list[str], fs: Path | None) -> None:
        """Launch with one or two of ``faults`` each time until all are delivered. A fault lands at a random moment
        once training is under way (a job holds its lock), or, for the report's faults, once every job has ended.
        When a sweep completes, a rerun without faults must exit 0 and its results must be the reference's; the
        round's next faults go to a fresh folder, so they land on training, not on a finished sweep."""
        queue, part, launches, idle = list(faults), 0, 0, 0
        sweep = self.work / f"{name}-{part}"
        while queue and launches < 4 * len(faults) + 4:
            take = queue[: self.rng.choice((1, 2))]
            launch = self.start(sweep)
            launches += 1
            for kind in sorted(take, key=lambda k: k.endswith("during report")):
                if not kind.endswith("during report"):
                    while launch.proc.poll() is None and not job_pids(sweep):  # training under way
                        launch.watch()
                        time.sleep(0.05)
                    self.wait(launch, self.rng.uniform(0, 3))
                if launch.proc.poll() is None and self.deliver(kind, launch, sweep, fs):
                    launch.faults.append(kind)
                    queue.remove(kind)
                    self.counts[kind] = self.counts.get(kind, 0) + 1
            rc = self.finish(launch)
            idle = 0 if launch.faults or rc == 0 else idle + 1
            if idle == 3:  # three fault-free launches in a row and still not complete: it never will be
                self.fail(sweep, f"three reruns without a fault did not complete the sweep; see {launch.log}")
                idle, part = 0, part + 1
                sweep = self.work / f"{name}-{part}"
                continue
            self.log(f"{self.launcher}: {sweep.name} launch {launches}: {', '.join(launch.faults) or 'no fault landed'}"
                     f"; exit {rc}")  # fmt: skip
            self.check(sweep, rc, launch.faults, log=launch.log)
            if complete(sweep) and queue:
                self.settle(sweep)
                part += 1
                sweep = self.work / f"{name}-{part}"
        self.settle(sweep)

    def wait(self, launch: Launch, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and launch.proc.poll() is None:
            launch.watch()
            time.sleep(0.05)

    def settle(self, sweep: Path) -> None:
        """The user's last reruns, without faults, until the command exits 0 (a job that a full disk failed
        needs one); then the results against the undisturbed sweep's."""
        for _ in range(3):
            launch = self.start(sweep)
            rc = self.finish(launch)
            self.check(sweep, rc, [], log=launch.log)
            if rc == 0:
                break
        self.compare(sweep, rc)
        self.put_away(sweep)

    def put_away(self, sweep: Path) -> None:
        """Move a finished sweep off the small filesystem (into ``<work>/done/``, kept with ``--keep``): a hundred
        faults leave some forty sweeps, more than the 256 MB that a full disk is made of (found at seed 4, where the
        harness filled it itself)."""
        import shutil

        if self.done is not None and sweep.exists() and sweep.parent != self.done:
            shutil.move(str(sweep), str(self.done / sweep.name))

    # -- the contract -------------------------------------------------------------------------------------------

    def fail(self, sweep: Path, what: str) -> None:
        self.violations.append(f"{self.launcher} {sweep.name}: {what}")
        self.log(f"chaos: VIOLATION {self.violations[-1]}")

    def check(self, sweep: Path, rc: int, faults: list[str], log: Path) -> None:
        """After a launch: every file readable, no job past its schedule or under another identity, every status
        saying what happened, the exit code saying whether the sweep is complete, no traceback from the command, and
        no fault that only a job should feel taking the sweep down (every job had its turn)."""
        from reslab.results.runs import load_sweep
        from reslab.training.checkpoint_io import load_checkpoint

        for path in sweep.rglob("*.json"):
            try:
                json.loads(path.read_text())
            except (OSError, ValueError) as e:
                self.fail(sweep, f"{path.relative_to(sweep)} does not parse ({e})")
        for path in sweep.rglob("*.ckpt"):
            try:
                step = int(load_checkpoint(path)["global_step"])
            except Exception as e:
                self.fail(sweep, f"{path.relative_to(sweep)} does not load ({type(e).__name__}: {e})")
                continue
            if step > MAX_STEPS:
                self.fail(sweep, f"{path.relative_to(sweep)} is at step {step}, past the schedule's {MAX_STEPS}")
        reference = {r.path.name: r.record for r in load_sweep(self.reference, series=False)}
        runs = load_sweep(sweep)
        for run in runs:
            name = run.path.name
            if run.status in ("running", "unknown", "unreadable"):
                self.fail(sweep, f"{name} is {run.status} after its launch ended ({run.record.get('error', '')})")
            identity = run.record.get("identity")  # None: a launcher's record of a job that died before its own
            if name not in reference or (identity is not None and identity != reference[name].get("identity")):
                self.fail(sweep, f"{name} holds a record of another identity")
            last = run.curves.get("train/loss", ([], []))[0]
            if len(last) and (max(last) > MAX_STEPS or len(set(last)) != len(last)):
                self.fail(sweep, f"{name}'s curves go past step {MAX_STEPS} or repeat a step")
            if int(run.record.get("steps") or 0) > MAX_STEPS:
                self.fail(sweep, f"{name} trained {run.record['steps']} steps, past its schedule's {MAX_STEPS}")
        lines = log.read_text(errors="replace").strip().splitlines()
        if lines and re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", lines[-1]) and not SIGNAL_KILLED(rc):
            if loky_tracker_noise(lines):
                self.known[LOKY_NOISE] = self.known.get(LOKY_NOISE, 0) + 1
            else:
                self.fail(sweep, f"the command ended with an uncaught exception ({lines[-1]}); see {log}")
        stops_sweep = [f for f in faults if f.endswith("to launcher") or f.endswith("during report")
                       or (self.launcher in IN_LAUNCHER and f.endswith("to job"))]  # fmt: skip
        # On a full disk a job may have no record to show for its turn (Hydra's files and the record both fail).
        if not stops_sweep and "disk full" not in faults and len(runs) < JOBS:
            self.fail(sweep, f"after {', '.join(faults) or 'no fault'} only {len(runs)} of {JOBS} jobs had their turn")
        if self.launcher == "search" and len(trials := study_trials(sweep)) > JOBS:
            self.fail(sweep, f"the study holds {len(trials)} trials, past n_trials={JOBS}")
        complete = len(runs) == JOBS and all(r.status in ("finished", "diverged") for r in runs)
        if rc == 0 and not complete:
            self.fail(sweep, "a launch exited 0 but the sweep is not complete")
        if complete and not faults and rc != 0:
            self.fail(sweep, f"a launch without faults exited {rc} on a complete sweep")

    def compare(self, sweep: Path, rc: int) -> None:
        from reslab.results.runs import load_sweep

        if rc != 0:
            self.fail(sweep, f"the last reruns did not complete the sweep (exit {rc})")
            return
        if (sweep / "summary.csv").read_bytes() != (self.reference / "summary.csv").read_bytes():
            self.fail(sweep, "summary.csv differs from the undisturbed sweep's")
        if self.launcher == "search" and study_trials(sweep) != study_trials(self.reference):
            self.fail(sweep, "the study's trials (number, state, parameters, value) differ from the undisturbed one's")
        for run in load_sweep(self.reference, series=False):
            job = sweep / run.path.name
            mine = json.loads((job / "metrics.json").read_text())
            for key in RESULT_KEYS:
                if mine.get(key) != run.record.get(key):
                    self.fail(sweep, f"{job.name}'s {key} is {mine.get(key)!r}, undisturbed {run.record.get(key)!r}")
            if (job / "curves.csv").read_bytes() != (run.path / "curves.csv").read_bytes():
                gaps = known_gaps(run.path / "curves.csv", job / "curves.csv")
                for gap in gaps or []:
                    self.known[gap] = self.known.get(gap, 0) + 1
                if gaps is None:
                    self.fail(sweep, f"{job.name}'s curves.csv differs from the undisturbed run's")


def known_gaps(reference: Path, disturbed: Path) -> list[str] | None:
    """The named gaps that make ``disturbed``'s curves.csv differ from ``reference``'s, or None if anything else
    differs. Training values, the scheduled validations and the final metrics are the same in both gaps:

    - *extra validation*: Lightning validates a run that is asked to stop (`trainer.should_stop`), so a job stopped
      by a signal between two scheduled validations has one more point on its validation curve;
    - *test point one step early*: a job stopped after its last training step and resumed trains nothing, and
      Lightning logs its test at its logging step, which a checkpoint written at the end of the last batch keeps one
      behind the step (its ``_batches_that_stepped``)."""
    import csv

    def rows(path: Path) -> dict[int, dict[str, str]]:
        with open(path, newline="") as f:
            return {int(row.pop("step")): row for row in csv.DictReader(f)}

    ref, new = rows(reference), rows(disturbed)
    gaps = []
    last = max(ref)
    tests = {k: v for k, v in ref.get(last, {}).items() if k.startswith("test/") and v}
    if last not in new and tests and all(new.get(last - 1, {}).get(k) == v for k, v in tests.items()):
        gaps.append("test point one step early after a resume at the last step")
        for k in tests:  # put it back where the undisturbed run logged it
            new[last - 1][k] = ""
        new[last] = {k: ref[last].get(k, "") for k in ref[last]}
    if set(ref) - set(new):
        return None
    for step, row in new.items():
        for column, value in row.items():
            before = ref.get(step, {}).get(column, "")
            if value != before and not (column.startswith("val/") and before == ""):
                return None
            if value != before and "extra validation at the stop step" not in gaps:
                gaps.append("extra validation at the stop step")
    return gaps


def study_trials(sweep: Path) -> list[tuple]:
    """An Optuna search's study in its sweep directory (reslab.cli.tuning): (number, state, parameters, value)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not (sweep / "optuna.db").exists():  # opening a storage creates it: not on a full disk, not here
        return []
    storage = f"sqlite:///{sweep / 'optuna.db'}"
    [summary] = optuna.get_all_study_summaries(storage) or [None]
    if summary is None:
        return []
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    return [(t.number, t.state.name, t.params, t.value) for t in study.trials]


LOKY_NOISE = "loky's relaunched resource tracker printed tracebacks for the killed one's resources"


def loky_tracker_noise(lines: list[str]) -> bool:
    """Whether the log's last traceback is loky's, not the command's: a killed loky resource tracker (a process under
    the launching one) is relaunched by loky ("resource_tracker: process died unexpectedly, relaunching"), and the new
    one prints a KeyError traceback for each resource the old one had registered, into the stderr it shares with the
    command. The command itself ends as it should (its exit code and results are checked as always)."""
    start = max((i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")), default=-1)
    frames = [line for line in lines[start:] if line.lstrip().startswith("File ")]
    relaunched = any("resource_tracker: process died unexpectedly" in line for line in lines)
    return start >= 0 and relaunched and bool(frames) and all("loky/backend/resource_tracker.py" in f for f in frames)


def signal_process(pid: int, signum: int) -> bool:
    try:
        os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False


def job_pids(sweeps) -> list[int]:
    """The processes training a job now in ``sweeps`` (a folder, or several): reslab's own reading of the locks."""
    from reslab.signals import job_processes

    folders = [sweeps] if isinstance(sweeps, Path) else list(sweeps)
    return sorted(pid for folder in folders for pid in job_processes(folder))


def complete(sweep: Path) -> bool:
    return ended_jobs(sweep) == JOBS


def ended_jobs(sweep: Path) -> int:
    ended = 0
    for path in sweep.glob("*/metrics.json"):
        try:
            ended += json.loads(path.read_text()).get("status") in ("finished", "diverged")
        except (OSError, ValueError):
            continue
    return ended


def small_filesystem(at: Path, size_mb: int) -> Path | None:
    """A tmpfs of ``size_mb`` mounted at ``at`` (root only), or None."""
    if os.geteuid() != 0:
        return None
    at.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(at)], capture_output=True)
    return at if done.returncode == 0 else None


def schedule(seed: int, total: int, launchers: list[str], can_fill_disk: bool) -> dict[str, list[list[str]]]:
    """The seeded fault list: ``total`` faults shared among the launchers, every kind in turn (shuffled), in rounds
    of at most 8 (a fresh sweep folder each)."""
    rng = random.Random(seed)
    plan: dict[str, list[list[str]]] = {}
    for i, launcher in enumerate(launchers):
        n = total // len(launchers) + (i < total % len(launchers))
        kinds = kinds_for(launcher, can_fill_disk)
        faults: list[str] = []
        while len(faults) < n:
            faults += rng.sample(kinds, len(kinds))
        faults = faults[:n]
        plan[launcher] = [faults[j : j + 8] for j in range(0, n, 8)]
    return plan


def run(seed: int, total: int, launchers: list[str], work: Path, log=say, keep: bool = False) -> Chaos:
    """Run the schedule; return the last launcher's harness with every launcher's violations and counts merged."""
    work.mkdir(parents=True, exist_ok=True)
    fs = small_filesystem(work / "fs", 256)
    try:
        base = fs or work
        plan = schedule(seed, total, launchers, fs is not None)
        log(f"chaos: seed {seed}, {total} faults, launchers {', '.join(launchers)}"
            + ("" if fs else "; no 'disk full' (needs root to mount a small tmpfs)"))  # fmt: skip
        for launcher, rounds in plan.items():
            log(f"chaos: {launcher}: " + " | ".join(", ".join(r) for r in rounds))
        merged = Chaos(base, "all", random.Random(seed), log, work / "logs")
        for launcher, rounds in plan.items():
            chaos = Chaos(base, launcher, random.Random(f"{seed}-{launcher}"), log, work / "logs")
            chaos.done = work / "done" if fs is not None else None
            if chaos.done is not None:
                chaos.done.mkdir(exist_ok=True)
            chaos.reference_sweep()
            for i, faults in enumerate(rounds):
                chaos.round(f"{launcher}-round{i}", faults, fs)
            chaos.put_away(chaos.reference)
            merged.violations += chaos.violations
            merged.orphans += chaos.orphans
            for k, n in chaos.known.items():
                merged.known[k] = merged.known.get(k, 0) + n
            for k, n in chaos.counts.items():
                merged.counts[k] = merged.counts.get(k, 0) + n
        return merged
    finally:
        if fs is not None:
            if keep:  # the sweeps outlive the small filesystem, for a look at what happened
                subprocess.run(["cp", "-a", str(fs), str(work / "sweeps")], capture_output=True)
            subprocess.run(["umount", "-l", str(fs)], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faults", type=int, default=120, help="in all, shared among the launchers")
    parser.add_argument("--launchers", default=",".join(LAUNCHERS), help="comma-separated: " + ", ".join(LAUNCHERS))
    parser.add_argument("--keep", type=Path, help="the working folder (default: a new one under /tmp, removed)")
    args = parser.parse_args(argv)
    launchers = args.launchers.split(",")
    if unknown := [x for x in launchers if x not in LAUNCHERS]:
        print(f"chaos: error: unknown launcher {unknown[0]}; choose from {', '.join(LAUNCHERS)}", file=sys.stderr)
        return 2
    import shutil
    import tempfile

    work = args.keep or Path(tempfile.mkdtemp(prefix="reslab-chaos-"))
    try:
        result = run(args.seed, args.faults, launchers, work, keep=args.keep is not None)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print("chaos: faults delivered: " + ", ".join(f"{k} {n}" for k, n in sorted(result.counts.items())))
    print(f"chaos: {sum(result.counts.values())} faults, {len(result.violations)} contract violation(s), "
          f"{result.orphans} idle leftover process(es) of killed launches killed")  # fmt: skip
    for what, n in result.known.items():
        print(f"chaos: known gap (not a violation, docs/runs-and-failures.md): {what}: {n} job(s)")
    for v in result.violations:
        print(f"chaos: VIOLATION {v}")
    python = os.path.relpath(sys.executable, ROOT)  # as the README writes it: no checkout's own path in a log
    print(f"chaos: to reproduce: {python} tools/chaos.py --seed {args.seed} --faults {args.faults} "
          f"--launchers {args.launchers}")  # fmt: skip
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())

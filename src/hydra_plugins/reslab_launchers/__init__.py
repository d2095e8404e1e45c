"""reslab's launchers, where Hydra looks for launchers: submitit's SLURM and local launchers that see every job to
its end (the behaviour is `reslab.cli.launchers.WatchedLaunch`), and Hydra's basic and joblib launchers with a sweep
that no single job takes down (`reslab.cli.launchers_local`)."""

from hydra._internal.core_plugins import basic_launcher as hydra_basic
from hydra_plugins.hydra_joblib_launcher import joblib_launcher as hydra_joblib
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as hydra_submitit

from reslab.cli.launchers import WatchedLaunch
from reslab.cli.launchers_local import WatchedBasic, WatchedJoblib


class SlurmLauncher(WatchedLaunch, hydra_submitit.SlurmLauncher):
    """``hydra/launcher=slurm``, ``slurm_cpu`` and ``submitit_slurm``."""


class LocalLauncher(WatchedLaunch, hydra_submitit.LocalLauncher):
    """``hydra/launcher=submitit_local``: the cluster path on one machine."""


class BasicLauncher(WatchedBasic, hydra_basic.BasicLauncher):
    """``hydra/launcher=basic`` (the default): the jobs in turn in the launching process."""


class JoblibLauncher(WatchedJoblib, hydra_joblib.JoblibLauncher):
    """``hydra/launcher=joblib`` and ``parallel``: the jobs on a loky pool of worker processes."""

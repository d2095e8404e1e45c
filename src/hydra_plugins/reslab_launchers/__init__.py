"""reslab's launchers, where Hydra looks for launchers: submitit's SLURM and local launchers that see every job to
its end (the behaviour is `reslab.cli.launchers.WatchedLaunch`)."""

from hydra_plugins.hydra_submitit_launcher import submitit_launcher as hydra_submitit

from reslab.cli.launchers import WatchedLaunch


class SlurmLauncher(WatchedLaunch, hydra_submitit.SlurmLauncher):
    """``hydra/launcher=slurm``, ``slurm_cpu`` and ``submitit_slurm``."""


class LocalLauncher(WatchedLaunch, hydra_submitit.LocalLauncher):
    """``hydra/launcher=submitit_local``: the cluster path on one machine."""

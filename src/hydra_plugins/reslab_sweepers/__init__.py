"""reslab's sweepers, where Hydra looks for sweepers: hydra-optuna-sweeper's search, resumable
(`reslab.cli.tuning.ResumableSearch`; conf/hparams_search/*.yaml name it). Only with the tune extra installed."""

try:
    from hydra_plugins.hydra_optuna_sweeper import optuna_sweeper as hydra_optuna
except ImportError:  # no tune extra: no search, and nothing for Hydra's plugin scan to trip on
    hydra_optuna = None

if hydra_optuna is not None:

    class OptunaSweeper(hydra_optuna.OptunaSweeper):
        """``hydra.sweeper._target_: hydra_plugins.reslab_sweepers.OptunaSweeper`` with ``hydra/sweeper: optuna``."""

        def __init__(self, **kwargs):
            from reslab.cli.tuning import ResumableSearch  # optuna is imported by a search only

            self.sweeper = ResumableSearch(**kwargs)

"""The console a job writes to: every log line once, and no framework chatter, whichever process the job runs in
(the launching command, a launcher's worker, one of a run's processes). Below everything that logs, so that
training code never imports the command line for it."""

from __future__ import annotations

import logging
import warnings

# Lightning's loggers print through handlers of their own (added on import) as well as through Hydra's: a job's
# lines should appear once, through Hydra's handlers, which also write the job's log file.
FRAMEWORK_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning")
# Chatty at INFO: TensorBoard's event reader (one line per file it opens).
QUIET_LOGGERS = ("tensorboard",)


class _NoVendorTips(logging.Filter):
    """Lightning advertises its cloud products in the log of every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip: For seamless cloud" not in str(record.msg)


def quiet_console() -> None:
    """Every log line once, and no framework chatter, whichever process the job runs in."""
    for name in FRAMEWORK_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoVendorTips) for f in logger.filters):
            logger.addFilter(_NoVendorTips())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Lightning 2.6 calls a pytree API that torch 2.13 deprecates, once per fit: not the user's concern.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # With several processes every one evaluates the whole split (reslab.training.ranks): nothing to sync.
    warnings.filterwarnings("ignore", message=r"It is recommended to use `self.log\('(val|test)/")
    # Said on every resume, which is reslab's intended use of the folder.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")

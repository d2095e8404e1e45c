"""Training: the LightningModule (loss, SGD, schedule, warm-up), the job's callbacks and the device settings."""

from reslab.training.callbacks import DivergenceGuard, ProgressLog, RunSummary
from reslab.training.classifier import Classifier, Warmup

__all__ = ["Classifier", "DivergenceGuard", "ProgressLog", "RunSummary", "Warmup"]

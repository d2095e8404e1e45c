"""Training: the LightningModule (loss, optimiser, schedule, warm-up), the job's callbacks, and the accelerator,
placement, memory layout and memory needs of a job."""

from reslab.training.callbacks import DivergenceGuard, ProgressLog, RunSummary
from reslab.training.classifier import Classifier, StepSchedule, Warmup
from reslab.training.step_checkpoint import StepCheckpoint

__all__ = ["Classifier", "DivergenceGuard", "ProgressLog", "RunSummary", "StepCheckpoint", "StepSchedule", "Warmup"]

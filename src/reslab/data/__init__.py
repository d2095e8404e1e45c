"""Data: the raw sources (CIFAR, IDX, synthetic; checksums, downloads) and the DataModule built on them."""

from reslab.data.datamodule import ImageDataModule, StepShuffledBatches
from reslab.data.sources import DATASETS, Arrays, DatasetInfo, dataset_info, load_arrays

__all__ = ["DATASETS", "Arrays", "DatasetInfo", "ImageDataModule", "StepShuffledBatches", "dataset_info", "load_arrays"]

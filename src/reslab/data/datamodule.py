"""The DataModule: uint8 tensors on the training device, a seeded train/val split, batched augmentation.

Raw files are read by `reslab.data.sources`; this module splits them and keeps each split, as uint8, on the
device the trainer trains on (the GPU's memory holds all of CIFAR-10 in 150 MB), so no batch is ever copied
from the host and no worker process is needed. Batches are made by tensor indexing (one ``x[idx]`` per batch
instead of 128 ``__getitem__`` calls and a collate), then augmented and normalised on the device in one go.
Batch order and augmentation randomness are both reproducible from the seed, the same on a CPU and a GPU,
and resume exactly from a checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, Sampler, SequentialSampler

from reslab.data.augment import normalize, random_crop, random_hflip
from reslab.data.sources import Arrays, dataset_info, load_arrays
from reslab.errors import UserError


def memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-d input batch in the layout the net was prepared for."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


class IndexedTensors(torch.utils.data.Dataset):
    """Images and labels indexed a whole batch at a time: ``ds[list_of_indices] -> (x, y)``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx_t = torch.as_tensor(idx)
        return self.x[idx_t], self.y[idx_t]


class StepShuffledBatches:
    """Training batches whose order is a pure function of (seed, step): epoch ``e`` is the permutation drawn
    from ``seed`` and ``e``, and batch ``k`` of the run is batch ``k % per_epoch`` of epoch ``k // per_epoch``.

    A resumed run therefore continues with exactly the batch it would have seen next, starting from the
    trainer's restored ``global_step``. Incomplete last batches are dropped. With ``world_size`` processes, each
    batch of ``batch_size`` is split into equal contiguous parts and process ``rank`` gets part ``rank``: together
    they train on exactly the batches one process would.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        seed: int,
        next_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size % world_size:
            raise UserError(
                f"dataset.batch_size={batch_size} does not split evenly across trainer.devices={world_size}; "
                f"choose a batch size that is a multiple of {world_size}"
            )
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.per_epoch = len(y) // batch_size
        self.next_step = next_step
        self.part = batch_size // world_size
        self.start = rank * self.part  # this process's images within each batch

    def __len__(self) -> int:
        return self.per_epoch

    def __iter__(self):
        epoch, start = divmod(self.next_step, self.per_epoch)
        # Drawn on the CPU, so a CPU and a GPU run see the same order; one copy to the data's device per epoch.
        # Seeds of different (seed, epoch) pairs never coincide for epochs < 1e6.
        perm = torch.randperm(len(self.y), generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
        perm = perm.to(self.y.device)
        for k in range(start, self.per_epoch):
            first = k * self.batch_size + self.start
            idx = perm[first : first + self.part]
            self.next_step += 1
            yield self.x[idx], self.y[idx]

    # Lightning checks for this interface to know that a mid-epoch resume is exact; the position itself
    # comes from the restored global_step, so there is nothing to store.
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def split_train_val(arrays: Arrays, val_fraction: float, seed: int) -> tuple[tuple, tuple]:
    """A seeded random split of the training set; the same ``seed`` gives the same split everywhere."""
    n = len(arrays.train_y)
    n_val = round(n * val_fraction)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    return ((arrays.train_x[train_idx], arrays.train_y[train_idx]), (arrays.train_x[val_idx], arrays.train_y[val_idx]))


def shrink(part: tuple[torch.Tensor, torch.Tensor], factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool uint8 images by ``factor`` (28×28 -> 14×14 for 2), once, when the data is loaded."""
    x, y = part
    pooled = F.avg_pool2d(x.float(), factor) if len(x) else x.float()[..., ::factor, ::factor]
    return pooled.round().to(torch.uint8), y


class ImageDataModule(L.LightningDataModule):
    """One dataset from the registry, split, batched and augmented for training.

    Args:
        name: dataset name (``cifar10``, ``cifar100``, ``fashion_mnist``, ``mnist``, ``synthetic``).
        data_dir: where files are looked for and downloaded to.
        batch_size: training batch (the paper: 128). Incomplete last batches are dropped.
        eval_batch_size: batch for validation and test (no effect on the numbers, only on speed).
        val_fraction: share of the training set held out for validation (CIFAR: 5k of 50k = 0.1).
        split_seed: seed of the train/val split; separate from the run seed so that all runs of a
            sweep are validated on the same images.
        shuffle_seed: seed of the training batch order.
        crop_pad: pixels of zero padding for the random crop (0 = no crop).
        hflip: random horizontal flips.
        download: allow downloading missing files.
        synthetic_train, synthetic_test: sizes of the ``synthetic`` set.
        downsample: average-pool the images by this factor when loading (1 = native size). The CPU default
            uses 2 on Fashion-MNIST (14×14): about 3× fewer FLOPs per step, so 3× more steps per hour.
        channels_last: hand batches to the net in NHWC layout (see `reslab.training.net_layout`).
        limit_train_batches: keep only the first this many batches of training images (debug=overfit); None = all.
        verify_checksums: refuse dataset files whose md5 is not the official one.
    """

    def __init__(
        self,
        name: str,
        data_dir: str,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        crop_pad: int = 0,
        hflip: bool = False,
        download: bool = True,
        synthetic_train: int = 2048,
        synthetic_test: int = 512,
        downsample: int = 1,
        channels_last: bool = False,
        limit_train_batches: int | None = None,
        verify_checksums: bool = True,
    ):
        super().__init__()
        self.info = dataset_info(name)
        if (
            isinstance(downsample, bool)
            or not isinstance(downsample, int)
            or downsample < 1
            or self.info.image_size % downsample
        ):
            raise UserError(
                f"dataset.downsample must be a whole factor of {name}'s {self.info.image_size}-pixel "
                f"images, got {downsample!r}; use 1 for the native size"
            )
        self.downsample = downsample
        self.image_size = self.info.image_size // downsample
        self.name, self.data_dir, self.download = name, data_dir, download
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.split_seed, self.shuffle_seed = val_fraction, split_seed, shuffle_seed
        self.crop_pad, self.hflip, self.channels_last = crop_pad, hflip, channels_last
        self.synthetic_sizes = (synthetic_train, synthetic_test)
        self.limit_train_batches = limit_train_batches
        self.verify_checksums = verify_checksums
        self.train = self.val = self.test = None
        self._generator: torch.Generator | None = None
        self._generator_state: torch.Tensor | None = None
        self._on_device: dict = {}  # (split, device) -> the split's tensors there
        self._stats: dict = {}  # device -> (mean, std) tensors, made once: a copy to a GPU syncs it

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        arrays = load_arrays(
            self.name,
            self.data_dir,
            download=self.download,
            seed=self.split_seed,
            synthetic_train=self.synthetic_sizes[0],
            synthetic_test=self.synthetic_sizes[1],
            verify=self.verify_checksums,
        )
        self.train, self.val = split_train_val(arrays, self.val_fraction, self.split_seed)
        self.test = (arrays.test_x, arrays.test_y)
        if self.downsample > 1:
            self.train, self.val, self.test = (
                shrink(part, self.downsample) for part in (self.train, self.val, self.test)
            )
        if self.limit_train_batches is not None:
            keep = self.limit_train_batches * self.batch_size
            self.train = (self.train[0][:keep], self.train[1][:keep])
        if len(self.train[1]) < self.batch_size:
            raise UserError(
                f"{self.name}: {len(self.train[1])} training images is fewer than "
                f"batch_size={self.batch_size}; lower dataset.batch_size"
            )

    def _loader(self, tensors: tuple, sampler: Sampler, batch_size: int, drop_last: bool) -> DataLoader:
        # batch_size=None: the BatchSampler yields index lists and the dataset returns whole batches.
        return DataLoader(
            IndexedTensors(*tensors), batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last=drop_last)
        )

    def resident(self, split: str, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's (images, labels) on ``device`` (default: the trainer's), copied there once."""
        if device is None:
            device = self.trainer.strategy.root_device if self.trainer is not None else "cpu"
        device = torch.device(device)
        key = (split, device)
        if key not in self._on_device:
            self._on_device[key] = tuple(t.to(device) for t in getattr(self, split))
        return self._on_device[key]

    def train_batches(
        self, device: torch.device | str | None = None, next_step: int = 0, rank: int = 0, world_size: int = 1
    ) -> StepShuffledBatches:
        """The training batches from step ``next_step`` on, indexed on ``device`` (process ``rank``'s part)."""
        return StepShuffledBatches(
            *self.resident("train", device),
            self.batch_size,
            self.shuffle_seed,
            next_step=next_step,
            rank=rank,
            world_size=world_size,
        )

    def _ranks(self) -> tuple[int, int]:
        return (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)

    def train_dataloader(self) -> StepShuffledBatches:
        step = self.trainer.global_step if self.trainer is not None else 0
        rank, world_size = self._ranks()
        return self.train_batches(next_step=step, rank=rank, world_size=world_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(
            self.resident("val"), SequentialSampler(range(len(self.val[1]))), self.eval_batch_size, False
        )

    def test_dataloader(self) -> DataLoader:
        return self._loader(
            self.resident("test"), SequentialSampler(range(len(self.test[1]))), self.eval_batch_size, False
        )

    def on_after_batch_transfer(self, batch: tuple, dataloader_idx: int) -> tuple:
        """Augment (training only) and normalise on the device the batch now lives on."""
        x, y = batch
        if self.trainer is not None and self.trainer.training:
            x = self.augment(x)
        return self.normalize(x), y

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """The configured random crop and flip of a uint8 batch, with the module's own generator. Split across
        processes, each draws the randomness of the whole batch and uses its part (`random_crop`)."""
        generator = self._augment_generator(x.device)
        rank, world_size = self._ranks()
        part = (rank * len(x), world_size * len(x)) if world_size > 1 else None
        x = random_crop(x, self.crop_pad, generator, part)
        return random_hflip(x, generator, part) if self.hflip else x

    def _augment_generator(self, device: torch.device) -> torch.Generator:
        """A generator of its own for augmentation, on the batch's device; checkpointed with the run."""
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.shuffle_seed)
            if self._generator_state is not None:
                self._generator.set_state(self._generator_state)
        return self._generator

    def state_dict(self) -> dict:
        return {"augment_rng": self._generator.get_state() if self._generator is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self._generator, self._generator_state = None, state.get("augment_rng")

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> the standardised float input the net sees, in the net's memory layout."""
        if x.device not in self._stats:
            self._stats[x.device] = tuple(
                torch.tensor(v, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
                for v in (self.info.mean, self.info.std)
            )
        return memory_format(normalize(x, *self._stats[x.device]), self.channels_last)

"""The DataModule: seeded split, step-indexed batch order, downsampling, checkpointed augmentation."""

import pytest
import torch

from reslab.data import ImageDataModule, StepShuffledBatches
from reslab.data.datamodule import shrink
from reslab.errors import UserError


def module(**kw) -> ImageDataModule:
    args = {
        "name": "synthetic",
        "data_dir": "unused",
        "batch_size": 32,
        "synthetic_train": 400,
        "synthetic_test": 50,
    } | kw
    dm = ImageDataModule(**args)
    dm.setup("fit")
    return dm


def test_split_is_seeded_disjoint_and_proportional():
    a, b, c = module(), module(), module(split_seed=1)
    assert len(a.val[1]) == 40 and len(a.train[1]) == 360
    assert torch.equal(a.val[0], b.val[0]) and not torch.equal(a.val[0], c.val[0])
    train_rows = {bytes(x.flatten().tolist()) for x in a.train[0]}
    assert not any(bytes(x.flatten().tolist()) in train_rows for x in a.val[0])


def test_batch_order_is_a_function_of_seed_and_step():
    x, y = torch.arange(100).view(100, 1, 1, 1).to(torch.uint8), torch.arange(100)
    full = [b[1] for _ in range(3) for b in StepShuffledBatches(x, y, 30, seed=0)]  # 3 epochs of 3 batches
    per_epoch = StepShuffledBatches(x, y, 30, seed=0)
    again = [b[1] for _ in range(3) for b in per_epoch]
    assert all(torch.equal(p, q) for p, q in zip(full[:3], again[:3]))
    # Starting at step 4 (epoch 1, batch 1) continues exactly where an uninterrupted run would be.
    resumed = [b[1] for b in StepShuffledBatches(x, y, 30, seed=0, next_step=4)]
    assert all(torch.equal(p, q) for p, q in zip(resumed, again[4:6]))
    assert len(resumed) == 2
    # Epochs are reshuffled, each epoch has no repeats, the other seed differs.
    assert not torch.equal(again[0], again[3])
    assert len(torch.cat(again[:3]).unique()) == 90
    other = [b[1] for b in StepShuffledBatches(x, y, 30, seed=1)]
    assert not torch.equal(other[0], again[0])


def test_downsample_averages_pixel_blocks():
    x = torch.tensor([[[[0, 2, 10, 10], [4, 6, 10, 10], [1, 1, 0, 0], [1, 1, 0, 255]]]], dtype=torch.uint8)
    small, _ = shrink((x, torch.zeros(1)), 2)
    assert small.dtype == torch.uint8 and small.tolist() == [[[[3, 10], [1, 64]]]]
    dm = module(downsample=2)
    assert dm.image_size == 16 and dm.train[0].shape[1:] == (3, 16, 16) and dm.test[0].shape[1:] == (3, 16, 16)


@pytest.mark.parametrize("factor", [0, 3, 2.0, True])
def test_downsample_must_divide_the_image_size(factor):
    with pytest.raises(UserError, match="dataset.downsample must be a whole factor"):
        ImageDataModule("synthetic", "unused", downsample=factor)


def test_augmentation_generator_state_round_trips():
    dm = module(crop_pad=4, hflip=True)
    x = dm.train[0][:16]
    dm.augment(x)
    state = dm.state_dict()
    expected = dm.augment(x)
    other = module(crop_pad=4, hflip=True)
    other.load_state_dict(state)
    assert torch.equal(other.augment(x), expected)
    assert not torch.equal(module(crop_pad=4, hflip=True).augment(x), expected)

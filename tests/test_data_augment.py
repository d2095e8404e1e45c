"""Batched normalisation and augmentation."""

import torch

from reslab.data.augment import normalize, random_crop, random_hflip


def test_normalize_standardises_per_channel():
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = normalize(x, (0.5, 0.0, 1.0), (0.5, 1.0, 0.25))
    assert out.dtype == torch.float32
    assert torch.allclose(out[:, 0], torch.tensor(1.0))
    assert torch.allclose(out[:, 1], torch.tensor(1.0))
    assert torch.allclose(out[:, 2], torch.tensor(0.0))


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    torch.manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = random_crop(x, pad=2)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts = set()
    for i in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert matches, f"image {i} is not a window of its padded original"
        shifts.add(matches[0])
    assert len(shifts) > 10  # offsets differ between images


def test_random_crop_pad_zero_is_identity():
    x = torch.randint(0, 256, (4, 1, 5, 5), dtype=torch.uint8)
    assert random_crop(x, 0) is x


def test_random_hflip_flips_about_half_of_the_images():
    torch.manual_seed(0)
    x = torch.randn(1000, 1, 3, 3)
    out = random_hflip(x)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert (flipped | same).all()
    assert 400 < flipped.sum() < 600

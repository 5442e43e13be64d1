"""Frequency-domain outliers (labelless.audit.frequency): robust z-scores against hand
computations, DCT band energies of pure cosines, and planted high-frequency triggers in digits
(grey, and grey stored as RGB with a chroma trigger) flagged with few clean images."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from labelless.audit.frequency import (
    band_energies,
    channel_names,
    frequency_outliers,
    robust_z,
)
from labelless.audit.pixels import unit_images
from labelless.audit.triggers import dct_matrix, rgb_to_ycbcr, ycbcr_to_rgb
from labelless.data import load_dataset
from labelless.errors import ConfigError, DataError

PLANTED = 12
SIZE = 32


def test_robust_z_matches_hand_computation():
    # median 3, |deviations| 2 1 0 1 97 -> MAD 1: z = 0.6745 (x - 3)
    z = robust_z(torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert torch.allclose(z, 0.6745 * torch.tensor([-2.0, -1.0, 0.0, 1.0, 97.0]), atol=1e-5)
    # MAD 0 -> mean absolute deviation 0.8, scaled by 1 / 0.7979: z(5) = 4 * 0.7979 / 0.8
    z = robust_z(torch.tensor([1.0, 1.0, 1.0, 1.0, 5.0]))
    assert z[-1] == pytest.approx(4 * 0.7979 / 0.8, rel=1e-5) and torch.all(z[:4] == 0)
    assert torch.equal(robust_z(torch.full((4,), 2.0)), torch.zeros(4))
    floored = robust_z(torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0]), min_scale=10.0)
    assert floored[-1] == pytest.approx(9.7)
    # per column (even counts: torch's lower median, 2 and |deviation| 1 for column 0); NaN
    # (nothing measured) is left out and scores 0
    columns = robust_z(torch.tensor([[1.0, 0.0], [2.0, float("nan")], [3.0, 1.0], [9.0, 2.0]]))
    assert columns[1, 1] == 0 and columns[3, 0] == pytest.approx(0.6745 * 7, rel=1e-4)


def _cosine(k: int, l: int, size: int = 16) -> torch.Tensor:
    """The DCT-II basis image (k, l) scaled into [0, 1]: 0.5 + 0.2 * b / max |b|."""
    d = dct_matrix(size)
    basis = torch.outer(d[k], d[l])
    return (0.5 + 0.2 * basis / basis.abs().max()).view(1, 1, size, size)


def test_a_pure_cosine_puts_all_its_detail_in_its_band():
    images = torch.cat([_cosine(1, 2), _cosine(14, 15), _cosine(9, 3)])  # 16 px, bands of 2
    energy, total = band_energies(images, bands=8)
    assert energy.shape == (3, 1, 64)
    for row, (k, l) in enumerate([(1, 2), (14, 15), (9, 3)]):
        band = (k // 2) * 8 + l // 2
        assert energy[row, 0, band] == pytest.approx(float(total[row, 0]), rel=1e-4)
    # basis energy: (0.2 / max|b|)^2, the rest of the band grid empty
    assert float(energy[:, 0].sum() - energy[:, 0].amax(dim=1).sum()) < 1e-6
    scores = frequency_outliers(torch.cat([images, images]))
    assert scores.share[1, 0] > 0.99 and scores.share[0, 0] < 0.01  # (14, 15) is high, (1, 2) low
    assert channel_names(3) == ("Y", "Cb", "Cr") and scores.channels == ("c0",)


def _digits(size: int = SIZE) -> torch.Tensor:
    """Training digits resized (bilinear, as a loader would) and stored as uint8 levels."""
    images = unit_images(load_dataset("digits").train.samples)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images.mul(255).round().div(255)


def _planted(count: int, seed: int = 0) -> torch.Tensor:
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:PLANTED]


def test_a_faint_high_frequency_pattern_in_a_few_digits_is_flagged():
    images = _digits()
    planted = _planted(len(images))
    checkerboard = (torch.arange(SIZE)[:, None] + torch.arange(SIZE)[None, :]) % 2 * 2.0 - 1
    poisoned = images.clone()  # +-4 grey levels: invisible on a digit
    poisoned[planted] = (images[planted] + 4 / 255 * checkerboard).clamp(0, 1).mul(
        255
    ).round() / 255
    scores = frequency_outliers(poisoned)
    clean = torch.ones(len(images), dtype=torch.bool)
    clean[planted] = False
    assert scores.z[planted].min() > 3.5  # measured 11.4
    assert int((scores.z[clean] > 3.5).sum()) <= 3  # measured 0 of 1,425
    assert scores.peak[planted].tolist() == [[0, 7, 7]] * PLANTED  # the checkerboard's band
    assert scores.share[planted].median() > 3 * scores.share[clean].median()


def test_a_chroma_trigger_on_grey_images_stored_as_rgb_is_flagged_in_cb_cr():
    """CTRL-like: a fixed magnitude added at DCT frequencies (15, 15) and (31, 31) of Cb and Cr
    (Li et al. 2023); the chroma of the clean grey images is flat."""
    images = _digits().expand(-1, 3, -1, -1)
    planted = _planted(len(images), seed=1)
    d = dct_matrix(SIZE)
    pattern = torch.outer(d[15], d[15]) + torch.outer(d[31], d[31])
    ycbcr = rgb_to_ycbcr(images[planted] * 255.0)
    ycbcr[:, 1:] += 50.0 * pattern
    poisoned = images.clone()
    poisoned[planted] = (ycbcr_to_rgb(ycbcr) / 255.0).clamp(0, 1).mul(255).round() / 255
    assert (poisoned - images).abs().max() <= 10 / 255  # a few grey levels
    scores = frequency_outliers(poisoned)
    clean = torch.ones(len(images), dtype=torch.bool)
    clean[planted] = False
    assert scores.z[planted].min() > 3.5  # measured 6.5
    assert int((scores.z[clean] > 3.5).sum()) <= 3  # measured 0
    assert set(scores.peak[planted, 0].tolist()) <= {1, 2}  # Cb or Cr


def test_bad_inputs_raise_errors_that_name_the_fix():
    images = torch.rand(4, 1, 8, 8)
    with pytest.raises(ConfigError, match="fraction of the Nyquist radius"):
        frequency_outliers(images, cutoff=0.0)
    with pytest.raises(ConfigError, match="bands must be a whole number"):
        frequency_outliers(images, bands=1)
    with pytest.raises(DataError, match="at least 3 images"):
        frequency_outliers(images[:2])
    with pytest.raises(DataError, match="at least 2x2"):
        frequency_outliers(torch.rand(4, 1, 1, 8))
    with pytest.raises(DataError, match=r"\[N, C, H, W\]"):
        frequency_outliers(torch.rand(4, 8, 8))

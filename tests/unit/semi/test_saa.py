"""Sample adaptive augmentation: historical losses, Otsu's split, the naive samples' half-mix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelless.semi.saa import LOSS, SampleAdaptiveAugmentation, half_mix, otsu_threshold
from labelless.semi.state import SampleState


def test_otsu_threshold_splits_two_clusters():
    values = torch.cat([torch.full((30,), 0.1), torch.full((10,), 2.0)])
    values = values + 0.01 * torch.randn(40, generator=torch.Generator().manual_seed(0))
    threshold = otsu_threshold(values)
    assert float(values[:30].max()) < threshold <= float(values[30:].min())


def _skimage_otsu(values: np.ndarray, nbins: int = 256) -> float:
    """scikit-image's ``threshold_otsu`` (``skimage/filters/thresholding.py``), which SAA's
    ``update_mask`` calls, re-derived: ``np.histogram`` over the value range, class weights and
    means from both ends, the between-class variance for each cut, the centre of the bin
    before the best cut."""
    hist, edges = np.histogram(values, bins=nbins, range=(values.min(), values.max()))
    centres = (edges[:-1] + edges[1:]) / 2
    hist = hist.astype(np.float64)
    weight1 = np.cumsum(hist)
    weight2 = np.cumsum(hist[::-1])[::-1]
    mean1 = np.cumsum(hist * centres) / weight1
    mean2 = (np.cumsum((hist * centres)[::-1]) / weight2[::-1])[::-1]
    variance = weight1[:-1] * weight2[1:] * (mean1[:-1] - mean2[1:]) ** 2
    return float(centres[:-1][np.argmax(variance)])


def test_otsu_threshold_equals_scikit_image_on_skewed_losses():
    generator = torch.Generator().manual_seed(1)
    losses = torch.cat(
        [torch.rand(500, generator=generator) * 0.05, torch.rand(200, generator=generator) * 3]
    )
    assert otsu_threshold(losses) == pytest.approx(_skimage_otsu(losses.numpy()), abs=1e-6)


def test_historical_loss_is_the_authors_ema_and_naive_are_the_low_side():
    """GuanGui-nju/SAA ``datasets/dataset.py``: ``update_loss`` is ``0.001 * old + 0.999 *
    loss`` from 0 (the first visit too); ``update_mask`` thresholds every unlabelled sample
    (unvisited ones at 0) with Otsu: below naive, above not naive."""
    state = SampleState(6, torch.arange(6))
    saa = SampleAdaptiveAugmentation(state)
    index = torch.tensor([0, 1, 2, 3])
    saa.record(index, torch.tensor([1.0, 1.0, 4.0, 4.0]))
    saa.record(index, torch.tensor([0.0, 2.0, 4.0, 0.2]))
    first = 0.999 * torch.tensor([1.0, 1.0, 4.0, 4.0])
    expected = 0.001 * first + 0.999 * torch.tensor([0.0, 2.0, 4.0, 0.2])
    torch.testing.assert_close(state[LOSS], torch.cat([expected, torch.zeros(2)]))
    stats = saa.select()  # unvisited samples 4 and 5 sit at 0: below the threshold, naive
    threshold = _skimage_otsu(state[LOSS].numpy())
    assert stats["saa/threshold"] == pytest.approx(threshold, abs=1e-6)
    assert saa.naive(torch.arange(6)).tolist() == (state[LOSS] < threshold).tolist()


def test_selection_runs_once_per_labelled_pass_after_the_start():
    """The authors' loop selects after each pass over the labelled loader once ``epoch_i >
    400`` (0-based): here after pass 402 (step 402 * every), then every ``every`` steps."""
    state = SampleState(8, torch.arange(8))
    saa = SampleAdaptiveAugmentation(state, start=400, every=3)
    saa.record(torch.arange(8), torch.tensor([0.1, 0.1, 0.1, 0.1, 2.0, 2.0, 2.0, 2.0]))
    ran = [steps for steps in range(1, 3 * 405) if saa.step_end(steps)]
    assert ran == [3 * 402, 3 * 403, 3 * 404]


def test_half_mix_takes_the_left_or_top_half_of_the_second_view():
    first = torch.zeros(64, 3, 4, 6)
    second = torch.ones(64, 3, 4, 6)
    mixed = half_mix(first, second, torch.Generator().manual_seed(0))
    left = torch.zeros(4, 6)
    left[:, :3] = 1
    top = torch.zeros(4, 6)
    top[:2] = 1
    is_left = (mixed == left).flatten(1).all(1)
    is_top = (mixed == top).flatten(1).all(1)
    assert bool((is_left ^ is_top).all())  # every sample is exactly one of the two
    assert 16 < int(is_left.sum()) < 48  # a fair coin per sample
    assert torch.equal(
        half_mix(first[:, 0, 0], second[:, 0, 0])[0], torch.tensor([1.0] * 3 + [0.0] * 3)
    )
    with pytest.raises(ValueError, match="one shape"):
        half_mix(first, second[:, :1])

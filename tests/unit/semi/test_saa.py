"""Sample adaptive augmentation: historical losses, Otsu's split, the naive samples' half-mix."""

from __future__ import annotations

import pytest
import torch

from labelless.semi.saa import LOSS, SampleAdaptiveAugmentation, half_mix, otsu_threshold
from labelless.semi.state import SampleState


def test_otsu_threshold_splits_two_clusters():
    values = torch.cat([torch.full((30,), 0.1), torch.full((10,), 2.0)])
    values = values + 0.01 * torch.randn(40, generator=torch.Generator().manual_seed(0))
    threshold = otsu_threshold(values)
    assert float(values[:30].max()) < threshold <= float(values[30:].min())


def test_historical_loss_is_an_ema_and_naive_are_the_low_side():
    state = SampleState(6, torch.arange(6))
    saa = SampleAdaptiveAugmentation(state, momentum=0.7)
    index = torch.tensor([0, 1, 2, 3])
    saa.record(index, torch.tensor([1.0, 1.0, 4.0, 4.0]))  # first visit: the loss itself
    saa.record(index, torch.tensor([0.0, 2.0, 4.0, 0.0]))
    expected = torch.tensor([0.7, 1.3, 4.0, 2.8, 0.0, 0.0])  # 0.7 * old + 0.3 * new
    torch.testing.assert_close(state[LOSS], expected)
    stats = saa.select()  # samples 4 and 5 were never seen: never naive
    assert saa.naive(torch.arange(6)).tolist() == [True, True, False, False, False, False]
    assert stats["saa/naive_fraction"] == pytest.approx(0.5)


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

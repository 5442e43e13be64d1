"""Time-series augmentations: output statistics, crop alignment, masking rate, permutations."""

from __future__ import annotations

import pytest
import torch

from labelless.augment.timeseries import (
    jitter,
    overlapping_crops,
    permute_segments,
    scaling,
    series_lengths,
    timeseries_views,
    timestamp_masking,
)
from labelless.errors import ConfigError, DataError


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ramps(batch: int = 16, channels: int = 2, length: int = 60) -> torch.Tensor:
    """x[i, c, t] = 1000 i + 100 c + t: every value names its sample, channel and time."""
    i = torch.arange(batch).view(-1, 1, 1) * 1000.0
    c = torch.arange(channels).view(1, -1, 1) * 100.0
    return (i + c + torch.arange(length).view(1, 1, -1)).float()


def test_jitter_adds_noise_of_the_given_std_and_keeps_nan():
    x = torch.zeros(64, 2, 500)
    x[0, :, 400:] = float("nan")
    out = jitter(x, sigma=0.3, generator=_generator())
    noise = out[1:]
    assert noise.mean().abs() < 0.01
    assert noise.std().item() == pytest.approx(0.3, rel=0.02)
    assert torch.isnan(out[0, :, 400:]).all() and not torch.isnan(out[0, :, :400]).any()


def test_scaling_is_one_factor_per_sample_and_channel():
    x = torch.ones(4000, 2, 10)
    out = scaling(x, sigma=0.2, generator=_generator())
    factors = out[:, :, 0]
    assert torch.equal(out, factors.unsqueeze(-1).expand_as(out))  # constant over time
    assert factors.mean().item() == pytest.approx(1.0, abs=0.01)
    assert factors.std().item() == pytest.approx(0.2, rel=0.05)


def test_timestamp_masking_rate_and_whole_timestamps():
    x = torch.ones(200, 3, 400)
    x[:, :, 300:] = float("nan")
    out = timestamp_masking(x, rate=0.3, generator=_generator())
    valid = out[:, :, :300]
    masked = valid == 0
    assert (masked.all(dim=1) == masked.any(dim=1)).all()  # all channels of a timestamp
    assert masked[:, 0].float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert torch.isnan(out[:, :, 300:]).all()


def test_crops_overlap_as_declared():
    x = _ramps(length=80)
    x[3, :, 50:] = float("nan")  # a shorter series
    for seed in range(20):
        view1, view2, overlap = overlapping_crops(x, min_overlap=4, generator=_generator(seed))
        assert overlap.shape == (16, 3) and (overlap == overlap[0]).all()
        start1, start2, length = overlap[0].tolist()
        assert length >= 4 and start2 == 0
        assert start1 + length <= view1.shape[-1] and length <= view2.shape[-1]
        shared1 = view1[:, :, start1 : start1 + length]
        shared2 = view2[:, :, start2 : start2 + length]
        assert torch.equal(torch.nan_to_num(shared1, -1), torch.nan_to_num(shared2, -1))
        # every value is from the right series and consecutive in time (NaN outside)
        for view in (view1, view2):
            finite = ~torch.isnan(view)
            sample = torch.div(view, 1000, rounding_mode="floor")
            assert (sample[finite] == torch.arange(16).view(-1, 1, 1).expand_as(view)[finite]).all()
            steps = torch.diff(view[0, 0][finite[0, 0]])
            assert (steps == 1).all()


def test_crops_move_per_sample():
    x = _ramps(length=200)
    view1, _, _ = overlapping_crops(x, generator=_generator(3))
    starts = (torch.nan_to_num(view1[:, 0], float("inf")).amin(dim=1) % 1000).unique()
    assert len(starts) > 3


def test_crops_respect_max_length_and_short_series():
    x = _ramps(length=300)
    view1, view2, _ = overlapping_crops(x, max_length=50, generator=_generator())
    assert view1.shape[-1] <= 50 and view2.shape[-1] <= 50
    with pytest.raises(DataError, match="too short"):
        overlapping_crops(_ramps(length=1), min_overlap=2)


def test_permutation_keeps_the_values_of_each_series():
    x = torch.randn(32, 3, 50)
    x[5, :, 20:] = float("nan")
    out = permute_segments(x, max_segments=6, generator=_generator())
    for i in range(32):
        before = x[i][:, ~torch.isnan(x[i, 0])]
        after = out[i][:, ~torch.isnan(out[i, 0])]
        assert torch.equal(before.sort(dim=1).values, after.sort(dim=1).values)
    assert torch.isnan(out[5, :, 20:]).all()  # the padding stays at the end
    # one reordering per series, shared by its channels
    moved = x[:, 0:1].argsort(dim=2)
    assert not torch.equal(out.nan_to_num(-9), x.nan_to_num(-9)) and moved.shape == (32, 1, 50)
    pairs_before = torch.stack([x[:, 0], x[:, 1]], -1)[0]
    pairs_after = torch.stack([out[:, 0], out[:, 1]], -1)[0]
    assert set(map(tuple, pairs_before.tolist())) == set(map(tuple, pairs_after.tolist()))
    unchanged = permute_segments(x, max_segments=1, generator=_generator())
    assert torch.equal(unchanged.nan_to_num(-9), x.nan_to_num(-9))


def test_permutation_moves_contiguous_segments():
    x = torch.arange(40.0).view(1, 1, 40).expand(64, 1, 40).contiguous()
    out = permute_segments(x, max_segments=4, generator=_generator())
    jumps = (torch.diff(out[:, 0], dim=1) != 1).sum(dim=1)
    assert jumps.max() <= 3  # at most 4 segments -> at most 3 breaks
    assert (jumps > 0).float().mean() > 0.5


def test_series_lengths():
    x = torch.zeros(3, 2, 10)
    x[1, :, 6:] = float("nan")
    x[2, 1, 3:] = float("nan")
    assert series_lengths(x).tolist() == [10, 6, 3]


def test_recipes_layout_and_determinism():
    x = torch.randn(8, 2, 64)
    assert len(timeseries_views("tstcc")(x)) == 2
    assert [v.shape for v in timeseries_views("weak")(x)] == [x.shape]
    assert [v.shape for v in timeseries_views("strong")(x)] == [x.shape]
    clean, a, b = timeseries_views("forecast")(x)
    assert torch.equal(clean, x) and a.shape == b.shape == x.shape
    ts2vec = timeseries_views("ts2vec", min_overlap=8)
    first = ts2vec(x, generator=_generator(1))
    second = ts2vec(x, generator=_generator(1))
    assert all(torch.equal(p, q) for p, q in zip(first, second, strict=True))
    assert first[2].dtype == torch.int64


def test_unknown_recipe_or_option():
    with pytest.raises(ConfigError, match="unknown time-series view recipe"):
        timeseries_views("simclr")
    with pytest.raises(ConfigError, match="takes only"):
        timeseries_views("tstcc", min_overlap=3)
    with pytest.raises(DataError, match=r"\[B, C, T\]"):
        timeseries_views("weak")(torch.randn(4, 10))

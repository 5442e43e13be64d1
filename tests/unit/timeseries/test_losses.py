"""TS2Vec and TS-TCC losses against hand computations and a naive reference."""

from __future__ import annotations

import math

import pytest
import torch

from labelless.nn.losses_timeseries import (
    forecast_mse,
    future_prediction_nce,
    hierarchical_contrastive_loss,
    instance_contrastive_loss,
    temporal_contrastive_loss,
)


def _naive_pairs(a, b):
    """Loops over anchors: -log softmax of the positive among all other 2N - 1 vectors."""
    u = torch.cat([a, b]).tolist()
    n = len(a)
    losses = []
    for i, anchor in enumerate(u):
        logits = {
            k: sum(p * q for p, q in zip(anchor, other, strict=True)) for k, other in enumerate(u)
        }
        positive = (i + n) % (2 * n)
        denominator = sum(math.exp(v) for k, v in logits.items() if k != i)
        losses.append(-(logits[positive] - math.log(denominator)))
    return sum(losses) / len(losses)


def _naive_instance(z1, z2):
    return sum(_naive_pairs(z1[:, t], z2[:, t]) for t in range(z1.shape[1])) / z1.shape[1]


def _naive_temporal(z1, z2):
    return sum(_naive_pairs(z1[i], z2[i]) for i in range(z1.shape[0])) / z1.shape[0]


def test_instance_loss_by_hand():
    # B=2, T=1, D=1: u = [1, 0, 1, 2]; anchor k's positive is (k + 2) mod 4
    z1 = torch.tensor([[[1.0]], [[0.0]]])
    z2 = torch.tensor([[[1.0]], [[2.0]]])
    e = math.e
    expected = (
        -math.log(e / (1 + e + e**2))  # anchor 1: others 0, 1, 2 -> positive 1
        + math.log(3)  # anchor 0: every logit is 0
        - math.log(e / (e + 1 + e**2))  # anchor 1 of view 2: others 1, 0, 2
        - math.log(1 / (1 + 2 * e**2))  # anchor 2: others 2, 0, 2 -> positive 0
    ) / 4
    assert instance_contrastive_loss(z1, z2).item() == pytest.approx(expected, rel=1e-6)


def test_temporal_loss_matches_naive_reference():
    z1, z2 = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    assert temporal_contrastive_loss(z1, z2).item() == pytest.approx(
        _naive_temporal(z1, z2), rel=1e-5
    )
    assert instance_contrastive_loss(z1, z2).item() == pytest.approx(
        _naive_instance(z1, z2), rel=1e-5
    )


def test_single_sample_has_no_instance_term():
    z = torch.randn(1, 4, 3)
    assert instance_contrastive_loss(z, z).item() == 0.0


def test_hierarchical_loss_levels():
    # T = 5: level 0 (T=5), max-pool -> T=2 (level 1), -> T=1: instance only; 3 levels
    z1, z2 = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    levels = [(z1, z2)]
    pool = lambda z: torch.nn.functional.max_pool1d(z.transpose(1, 2), 2).transpose(1, 2)  # noqa: E731
    levels.append((pool(z1), pool(z2)))
    levels.append((pool(levels[1][0]), pool(levels[1][1])))
    assert levels[2][0].shape[1] == 1
    alpha = 0.3
    expected = sum(
        alpha * _naive_instance(a, b) + (1 - alpha) * _naive_temporal(a, b) for a, b in levels[:2]
    )
    expected = (expected + alpha * _naive_instance(*levels[2])) / 3
    got = hierarchical_contrastive_loss(z1, z2, alpha=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # temporal_unit=1 drops the temporal term of level 0
    expected_unit = (
        alpha * _naive_instance(z1, z2)
        + alpha * _naive_instance(*levels[1])
        + (1 - alpha) * _naive_temporal(*levels[1])
        + alpha * _naive_instance(*levels[2])
    ) / 3
    got_unit = hierarchical_contrastive_loss(z1, z2, alpha=alpha, temporal_unit=1)
    assert got_unit.item() == pytest.approx(expected_unit, rel=1e-5)


def test_future_prediction_nce_by_hand():
    # B=2, K=1, D=1: logits[i, j] = p_i z_j
    p = torch.tensor([[[1.0]], [[2.0]]])
    z = torch.tensor([[[1.0]], [[-1.0]]])
    e = math.e
    expected = (-math.log(e / (e + 1 / e)) - math.log(e**-2 / (e**2 + e**-2))) / 2
    assert future_prediction_nce(p, z).item() == pytest.approx(expected, rel=1e-6)


def test_future_prediction_nce_averages_steps():
    p, z = torch.randn(4, 3, 5), torch.randn(4, 3, 5)
    per_step = [future_prediction_nce(p[:, k : k + 1], z[:, k : k + 1]) for k in range(3)]
    assert future_prediction_nce(p, z).item() == pytest.approx(sum(per_step).item() / 3, rel=1e-5)


def test_forecast_mse_ignores_missing_targets():
    prediction = torch.tensor([[1.0, 2.0, 3.0]])
    target = torch.tensor([[0.0, float("nan"), 5.0]])
    assert forecast_mse(prediction, target).item() == pytest.approx((1 + 4) / 2)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        hierarchical_contrastive_loss(torch.randn(2, 3, 4), torch.randn(2, 4, 4))

"""alpha-ReQ, LiDAR, alignment and uniformity against known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labelless.errors import DataError
from labelless.evaluate import alignment, alpha_req, eigenspectrum, lidar, uniformity


def with_spectrum(eigenvalues: torch.Tensor, num_samples: int = 400, seed: int = 0):
    """Rows whose empirical covariance has exactly ``eigenvalues`` (random orthogonal axes)."""
    generator = torch.Generator().manual_seed(seed)
    dim = len(eigenvalues)
    raw = torch.randn(num_samples, dim, generator=generator, dtype=torch.float64)
    centred_basis, _ = torch.linalg.qr(raw - raw.mean(dim=0))  # orthonormal, zero-mean columns
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    scales = (eigenvalues * (num_samples - 1)).sqrt()
    return (centred_basis * scales) @ rotation.T + 3.0  # an offset: the covariance centres it


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_recovers_a_power_law_exponent(alpha):
    ranks = torch.arange(1, 65, dtype=torch.float64)
    z = with_spectrum(ranks.pow(-alpha))
    torch.testing.assert_close(eigenspectrum(z), ranks.pow(-alpha), rtol=1e-3, atol=1e-9)
    assert alpha_req(z.float()) == pytest.approx(alpha, rel=1e-3)
    assert alpha_req(z, fit_range=(5, 40)) == pytest.approx(alpha, rel=1e-3)


def test_alpha_req_ignores_numerical_zeros_and_refuses_collapse():
    ranks = torch.arange(1, 9, dtype=torch.float64)
    spectrum = torch.cat([ranks.pow(-1.5), torch.zeros(24, dtype=torch.float64)])
    assert alpha_req(with_spectrum(spectrum)) == pytest.approx(1.5, rel=1e-3)
    with pytest.raises(DataError, match="collapsed"):
        alpha_req(torch.ones(50, 8))


def four_samples_two_views(a: float, b: float, s: float) -> torch.Tensor:
    """Means (a,0), (-a,0), (0,b), (0,-b); views mean +- e with e = (s,0) for the first two
    samples and (0,s) for the last two: S_b = diag(2a^2, 2b^2) / 3 and S_w = (s^2 + delta) I."""
    means = torch.tensor([[a, 0], [-a, 0], [0, b], [0, -b]], dtype=torch.float64)
    offsets = torch.tensor([[s, 0], [s, 0], [0, s], [0, s]], dtype=torch.float64)
    return torch.stack([means + offsets, means - offsets], dim=1)  # [4 samples, 2 views, 2]


def test_lidar_by_hand():
    # LDA eigenvalues (2a^2/3, 2b^2/3) / (s^2 + delta): p = (a^2, b^2) / (a^2 + b^2).
    a, b = 1.0, 2.0
    p = np.array([a**2, b**2]) / (a**2 + b**2) + 1e-8
    expected = math.exp(-(p * np.log(p)).sum())  # p = (0.2, 0.8): exp(0.5004) = 1.6494
    assert lidar(four_samples_two_views(a, b, s=0.5)) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(1.6494, abs=1e-4)
    assert lidar(four_samples_two_views(2.0, 2.0, s=0.5)) == pytest.approx(2.0, rel=1e-6)


def test_lidar_separable_beats_collapsed():
    generator = torch.Generator().manual_seed(0)
    samples, views, dim = 200, 4, 16
    noise = 0.1 * torch.randn(samples, views, dim, generator=generator)
    separable = torch.randn(samples, 1, dim, generator=generator) + noise
    direction = torch.randn(dim, generator=generator)
    collapsed = torch.randn(samples, 1, 1, generator=generator) * direction + noise
    high, low = lidar(separable), lidar(collapsed)
    assert high > 14 and low < 2 and high > low
    with pytest.raises(DataError, match=r"\[samples, views, dim\]"):
        lidar(torch.randn(10, 8))


def test_alignment_and_uniformity_by_hand():
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    y = torch.tensor([[0.0, 3.0], [5.0, 0.0]])  # distances on the sphere: sqrt(2) and 0
    assert alignment(x, y) == pytest.approx((2.0 + 0.0) / 2)
    assert alignment(x, y, alpha=1.0) == pytest.approx(math.sqrt(2) / 2)
    # 0, 90 and 180 degrees: squared distances 2, 2 and 4 between the three pairs.
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    expected = math.log((2 * math.exp(-4) + math.exp(-8)) / 3)
    assert uniformity(z) == pytest.approx(expected, rel=1e-6)
    assert uniformity(z, chunk_size=1) == pytest.approx(expected, rel=1e-6)
    assert uniformity(torch.ones(5, 3)) == pytest.approx(0.0, abs=1e-6)  # one point: log 1

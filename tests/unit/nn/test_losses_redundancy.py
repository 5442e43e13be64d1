"""Barlow Twins and VICReg against hand computations on small tensors."""

from __future__ import annotations

import math

import torch

from labelless.nn.losses import barlow_twins, vicreg

BN_EPS = 1e-5


def _columns(z):
    return [[float(row[d]) for row in z] for d in range(z.shape[1])]


def _barlow_by_hand(z0, z1, lambd):
    """Zbontar et al. eqs. 1-2 with loops: standardise each column (biased variance, BatchNorm's
    eps), C_ij = sum_b a_bi b_bj / N."""
    n = len(z0)

    def standardise(column):
        mean = sum(column) / n
        variance = sum((x - mean) ** 2 for x in column) / n
        return [(x - mean) / math.sqrt(variance + BN_EPS) for x in column]

    a = [standardise(c) for c in _columns(z0)]
    b = [standardise(c) for c in _columns(z1)]
    total = 0.0
    for i in range(len(a)):
        for j in range(len(b)):
            c_ij = sum(a[i][k] * b[j][k] for k in range(n)) / n
            total += (1 - c_ij) ** 2 if i == j else lambd * c_ij**2
    return total


def test_barlow_twins_three_by_two_by_hand():
    z0 = torch.tensor([[1.0, 2.0], [0.0, -1.0], [2.0, 0.5]])
    z1 = torch.tensor([[0.5, 1.0], [1.0, -2.0], [1.5, 0.0]])
    for lambd in (5e-3, 0.5, 1.0):
        expected = _barlow_by_hand(z0, z1, lambd)
        assert math.isclose(float(barlow_twins(z0, z1, lambd)), expected, rel_tol=1e-5)


def test_barlow_twins_closed_form_for_flipped_views():
    # z1 = -z0: C = -I for decorrelated columns, so the loss is D * (1 - (-1))^2 = 4 D.
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert math.isclose(float(barlow_twins(z, -z)), 8.0, rel_tol=1e-4)


def _hadamard_columns():
    """8 samples x 7 dimensions: zero-mean, unit (biased) variance, mutually uncorrelated."""
    h = torch.tensor([[1.0]])
    for _ in range(3):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h[:, 1:]


def test_barlow_twins_is_zero_for_identical_decorrelated_embeddings():
    z = _hadamard_columns()
    assert torch.allclose(z.mean(0), torch.zeros(7)) and torch.allclose(z.T @ z / 8, torch.eye(7))
    assert float(barlow_twins(z, z.clone(), lambd=1.0)) < 1e-8
    # Standardisation removes any per-dimension scale and shift of a view.
    scale, shift = torch.linspace(0.5, 3.0, 7), torch.linspace(-2.0, 2.0, 7)
    assert float(barlow_twins(z * scale + shift, z, lambd=1.0)) < 1e-8
    # A correlated pair of columns is penalised by lambd * 2 * C_01^2 = 2 lambd.
    correlated = z.clone()
    correlated[:, 1] = correlated[:, 0]
    assert math.isclose(float(barlow_twins(correlated, correlated, 0.5)), 1.0, rel_tol=1e-4)


def _vicreg_terms_by_hand(z0, z1):
    """Bardes et al.: s as element-wise MSE, v with unbiased std (gamma 1, eps 1e-4), c / D."""
    n, d = z0.shape
    invariance = sum(float(z0[i, j] - z1[i, j]) ** 2 for i in range(n) for j in range(d)) / (n * d)

    def variance_covariance(z):
        columns = _columns(z)
        means = [sum(c) / n for c in columns]

        def cov(p, q):
            return sum((columns[p][k] - means[p]) * (columns[q][k] - means[q]) for k in range(n))

        cov_matrix = [[cov(p, q) / (n - 1) for q in range(d)] for p in range(d)]
        v = sum(max(0.0, 1 - math.sqrt(cov_matrix[j][j] + 1e-4)) for j in range(d)) / d
        c = sum(cov_matrix[p][q] ** 2 for p in range(d) for q in range(d) if p != q) / d
        return v, c

    v0, c0 = variance_covariance(z0)
    v1, c1 = variance_covariance(z1)
    return invariance, (v0 + v1) / 2, c0 + c1


def test_vicreg_terms_by_hand():
    z0 = torch.tensor([[0.5, 1.0, -0.2], [0.1, -0.3, 0.4], [0.9, 0.2, 0.0], [-0.4, 0.6, 0.3]])
    z1 = torch.tensor([[0.3, 0.8, 0.1], [0.2, -0.1, 0.5], [1.2, 0.4, -0.3], [-0.6, 0.1, 0.2]])
    invariance, variance, covariance = _vicreg_terms_by_hand(z0, z1)
    assert variance > 0 and covariance > 0
    assert math.isclose(float(vicreg(z0, z1, 1, 0, 0)), invariance, rel_tol=1e-5)
    assert math.isclose(float(vicreg(z0, z1, 0, 1, 0)), variance, rel_tol=1e-5)
    assert math.isclose(float(vicreg(z0, z1, 0, 0, 1)), covariance, rel_tol=1e-5)
    expected = 25 * invariance + 25 * variance + covariance
    assert math.isclose(float(vicreg(z0, z1)), expected, rel_tol=1e-5)


def test_vicreg_variance_term_is_zero_when_std_reaches_one():
    z = _hadamard_columns()  # unbiased std sqrt(8 / 7) > 1 in every dimension
    wide = z * torch.linspace(1.0, 4.0, 7) + 3.0
    z0 = wide.clone().requires_grad_(True)
    loss = vicreg(z0, wide + 0.1, sim_weight=0, var_weight=1, cov_weight=0)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(z0.grad) == 0
    # Shrunk below std 1, the hinge is active: std = 0.5 * sqrt(8/7) in every dimension.
    shrunk = vicreg(z * 0.5, z * 0.5, sim_weight=0, var_weight=1, cov_weight=0)
    assert math.isclose(float(shrunk), 1 - math.sqrt(0.25 * 8 / 7 + 1e-4), rel_tol=1e-5)


def test_vicreg_covariance_is_zero_for_decorrelated_and_invariance_for_identical_views():
    z = _hadamard_columns()
    assert float(vicreg(z, z.clone(), sim_weight=1, var_weight=0, cov_weight=1)) < 1e-10

"""Losses against hand computations on small tensors."""

from __future__ import annotations

import math

import pytest
import torch

from labelless.nn.losses import byol, dcl, info_nce, negative_cosine


def _nt_xent_by_hand(z0, z1, t):
    """Loop over anchors exactly as in SimCLR's equation 1."""
    z = torch.cat([z0, z1])
    z = z / z.norm(dim=1, keepdim=True)
    n = len(z0)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = [float(z[i] @ z[k]) / t for k in range(2 * n)]
        denominator = sum(math.exp(s) for k, s in enumerate(sims) if k != i)
        total += -math.log(math.exp(sims[j]) / denominator)
    return total / (2 * n)


def test_info_nce_equals_hand_computation():
    z0 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z1 = torch.tensor([[0.8, 0.1], [0.2, 1.0], [-1.0, 0.5]])
    for t in (0.1, 0.5, 1.0):
        assert math.isclose(float(info_nce(z0, z1, t)), _nt_xent_by_hand(z0, z1, t), rel_tol=1e-5)


def test_info_nce_two_samples_closed_form():
    # Orthogonal pairs: each anchor sees its positive at cos 1 and two negatives at cos 0.
    z0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = 0.5
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 2.0))
    assert math.isclose(float(info_nce(z0, z0.clone(), t)), expected, rel_tol=1e-6)


def test_info_nce_rewards_aligned_views():
    torch.manual_seed(0)
    z = torch.randn(16, 8)
    aligned = info_nce(z, z + 0.01 * torch.randn_like(z), 0.2)
    shuffled = info_nce(z, torch.randn(16, 8), 0.2)
    assert aligned < shuffled


def test_byol_and_negative_cosine_values():
    p = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    z = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    cosines = [1 / math.sqrt(2), -1.0]
    assert math.isclose(float(negative_cosine(p, z)), -sum(cosines) / 2, rel_tol=1e-6)
    by_hand = sum(2 - 2 * c for c in cosines) / 2  # ||p/|p| - z/|z|||^2 = 2 - 2 cos
    assert math.isclose(float(byol(p, z)), by_hand, rel_tol=1e-6)


def test_byol_target_receives_no_gradient():
    p = torch.randn(4, 3, requires_grad=True)
    z = torch.randn(4, 3, requires_grad=True)
    byol(p, z).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert z.grad is None


def _dcl_by_hand(z0, z1, t, sigma=None):
    """Yeh et al. eq. 6 (and the vMF weight of eq. 9) as a loop over the 2N anchors.

    Works in torch scalar operations so gradients can be compared; the weights are plain floats.
    """
    z = torch.cat([z0, z1])
    z = z / z.norm(dim=1, keepdim=True)
    n = len(z0)
    positives = [float(z[i].detach() @ z[i + n].detach()) for i in range(n)]
    weights = [1.0] * n
    if sigma is not None:
        expectation = sum(math.exp(s / sigma) for s in positives) / n
        weights = [2 - math.exp(s / sigma) / expectation for s in positives]
    total = 0.0
    for i in range(2 * n):
        sample = i % n
        positive = z[i] @ z[(i + n) % (2 * n)] / t
        negatives = sum(torch.exp(z[i] @ z[k] / t) for k in range(2 * n) if k % n != sample)
        total = total - weights[sample] * positive + torch.log(negatives)
    return total / (2 * n)


def test_dcl_equals_hand_computation():
    z0 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z1 = torch.tensor([[0.8, 0.1], [0.2, 1.0], [-1.0, 0.5]])
    for t in (0.1, 0.5):
        assert math.isclose(float(dcl(z0, z1, t)), float(_dcl_by_hand(z0, z1, t)), rel_tol=1e-5)
        for sigma in (0.2, 0.5, 2.0):
            expected = float(_dcl_by_hand(z0, z1, t, sigma))
            got = float(dcl(z0, z1, t, weighted=True, sigma=sigma))
            assert math.isclose(got, expected, rel_tol=1e-5)


def test_dcl_orthogonal_closed_form():
    # Positive at cos 1 (left out of the denominator), two negatives at cos 0: -1/t + log 2.
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    for t in (0.1, 0.5):
        assert math.isclose(float(dcl(z, z.clone(), t)), -1 / t + math.log(2), rel_tol=1e-6)


def test_dcl_is_below_info_nce():
    # Same anchors and negatives; InfoNCE's denominator also holds the positive.
    z0, z1 = torch.randn(16, 8), torch.randn(16, 8)
    for t in (0.1, 0.5, 1.0):
        assert dcl(z0, z1, t) < info_nce(z0, z1, t)
    # Per anchor, exp(l_nce) = exp(l_dcl) + 1 exactly; with an orthonormal batch every anchor has
    # the same loss, so the relation holds for the means too.
    z = torch.eye(4)
    for t in (0.5, 1.0):
        expected = math.log1p(math.exp(float(dcl(z, z.clone(), t))))
        assert math.isclose(float(info_nce(z, z.clone(), t)), expected, rel_tol=1e-6)


def test_dclw_reduces_to_dcl():
    z0, z1 = torch.randn(12, 6), torch.randn(12, 6)
    # sigma -> inf: softmax over positives is uniform, every weight is 2 - N / N = 1.
    assert torch.allclose(dcl(z0, z1, 0.2, weighted=True, sigma=1e8), dcl(z0, z1, 0.2), atol=1e-6)
    # Equal positive similarities give equal weights, again 1.
    assert torch.allclose(dcl(z0, z0, 0.2, weighted=True), dcl(z0, z0, 0.2), atol=1e-6)
    # Otherwise the weighting changes the loss.
    assert not torch.allclose(dcl(z0, z1, 0.2, weighted=True), dcl(z0, z1, 0.2), atol=1e-3)


def test_dclw_weight_carries_no_gradient():
    z0 = torch.randn(5, 4, requires_grad=True)
    z1 = torch.randn(5, 4, requires_grad=True)
    dcl(z0, z1, 0.3, weighted=True, sigma=0.5).backward()
    h0, h1 = z0.detach().clone().requires_grad_(True), z1.detach().clone().requires_grad_(True)
    _dcl_by_hand(h0, h1, 0.3, sigma=0.5).backward()  # weights are constants there
    assert torch.allclose(z0.grad, h0.grad, atol=1e-5)
    assert torch.allclose(z1.grad, h1.grad, atol=1e-5)


def test_dcl_rejects_mismatched_views():
    with pytest.raises(ValueError, match="same shape"):
        dcl(torch.randn(4, 3), torch.randn(5, 3))

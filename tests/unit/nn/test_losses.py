"""Losses against hand computations on small tensors."""

from __future__ import annotations

import math

import torch

from labelless.nn.losses import byol, info_nce, negative_cosine


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

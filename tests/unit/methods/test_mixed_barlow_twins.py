"""Mixed Barlow Twins: the mixup regulariser against a hand computation of the paper's
cross-correlation targets, and the method's total loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelless.errors import ConfigError
from labelless.methods import create_method
from labelless.nn.losses import barlow_twins, mixed_barlow_twins

SMALL = {"proj_hidden_dim": 32, "proj_dim": 16, "lambd": 0.01}


def _standardised(z: np.ndarray) -> np.ndarray:
    return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)  # biased variance, as barlow_twins


def _regulariser_by_hand(zm, z0, z1, permutation, mix) -> float:
    """The paper's form: C(m, v) against mix * C(0, v) + (1 - mix) * C(1', v), v = 0, 1."""
    n = len(z0)
    sm, s0, s1 = _standardised(zm), _standardised(z0), _standardised(z1)
    s1p = s1[permutation]
    total = 0.0
    for sv in (s0, s1):
        cross = sm.T @ sv / n
        target = mix * (s0.T @ sv / n) + (1 - mix) * (s1p.T @ sv / n)
        total += ((cross - target) ** 2).sum()
    return total


def test_regulariser_matches_a_hand_computation():
    generator = torch.Generator().manual_seed(3)
    zm, z0, z1 = (torch.randn(7, 4, generator=generator, dtype=torch.float64) for _ in range(3))
    permutation = torch.tensor([3, 0, 6, 1, 2, 5, 4])
    got = mixed_barlow_twins(zm, z0, z1, permutation, 0.3)
    expected = _regulariser_by_hand(zm.numpy(), z0.numpy(), z1.numpy(), permutation.numpy(), 0.3)
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_regulariser_vanishes_when_the_mixture_is_the_first_view():
    z0, z1 = torch.randn(6, 5), torch.randn(6, 5)
    zero = mixed_barlow_twins(z0, z0, z1, torch.randperm(6), 1.0)
    assert zero.item() == pytest.approx(0.0, abs=1e-10)
    assert mixed_barlow_twins(z1, z0, z1, torch.randperm(6), 1.0).item() > 0.1


def test_gradient_reaches_the_mixture_and_both_views():
    leaves = [torch.randn(6, 5, requires_grad=True) for _ in range(3)]
    mixed_barlow_twins(*leaves, torch.randperm(6), 0.4).backward()
    assert all(leaf.grad is not None and leaf.grad.abs().sum() > 0 for leaf in leaves)


def test_method_loss_is_barlow_twins_plus_the_weighted_regulariser(backbone, views, check_contract):
    method = create_method("mixed_barlow_twins", backbone, reg_weight=4.0, **SMALL)
    assert method.default_views == "barlow_twins"
    torch.manual_seed(11)
    out = check_contract(method, views)
    torch.manual_seed(11)  # the same mixing ratio and permutation as the forward drew
    alpha = torch.tensor(1.0)
    mix = float(torch.distributions.Beta(alpha, alpha).sample())
    permutation = torch.randperm(6)
    with torch.no_grad():
        z0, z1 = (method.projector(method.backbone(v)) for v in views)
        zm = method.projector(method.backbone(mix * views[0] + (1 - mix) * views[1][permutation]))
    bt = barlow_twins(z0, z1, lambd=0.01)
    regulariser = mixed_barlow_twins(zm, z0, z1, permutation, mix)
    assert torch.allclose(out["bt_loss"], bt, rtol=1e-5)
    assert torch.allclose(out["mix_loss"], regulariser, rtol=1e-4)
    assert torch.allclose(out["loss"], bt + 4.0 * 0.01 * regulariser, rtol=1e-5)


def test_without_regulariser_it_is_barlow_twins(backbone, views):
    method = create_method("mixed_barlow_twins", backbone, reg_weight=0.0, **SMALL)
    out = method(views, {})
    with torch.no_grad():
        z0, z1 = (method.projector(method.backbone(v)) for v in views)
    assert torch.allclose(out["loss"], barlow_twins(z0, z1, lambd=0.01), rtol=1e-5)
    default = create_method("mixed_barlow_twins", backbone)
    assert default.reg_weight == 4.0 and default.lambd == 5e-3 and default.mix_alpha == 1.0
    with pytest.raises(ConfigError, match="mix_alpha must be positive"):
        create_method("mixed_barlow_twins", backbone, mix_alpha=0.0)

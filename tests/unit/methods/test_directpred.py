"""DirectPred: the moving correlation and the eigen-predictor against hand computations, and a
predictor that is set, never trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelless.errors import ConfigError
from labelless.methods import create_method
from labelless.nn.losses import byol, directpred_predictor, update_correlation

SMALL = {"proj_hidden_dim": 32, "proj_dim": 8}


def _by_hand(correlation: np.ndarray, eps: float) -> np.ndarray:
    """U diag(p) U^T with p_j = sqrt(s_j) / max sqrt(s) + eps, in float64 numpy."""
    s, u = np.linalg.eigh(correlation)
    roots = np.sqrt(np.clip(s, 0, None))
    p = roots / roots.max() + eps
    return u @ np.diag(p) @ u.T


def test_predictor_is_u_diag_p_u_transpose():
    z = torch.randn(20, 5, dtype=torch.float64)
    correlation = z.T @ z / 20
    got = directpred_predictor(correlation, eps=0.1)
    assert np.allclose(got.numpy(), _by_hand(correlation.numpy(), 0.1), atol=1e-10)
    # the same matrix written without eigenvectors: F^(1/2) / sqrt(s_max) + eps I
    s, u = np.linalg.eigh(correlation.numpy())
    root = u @ np.diag(np.sqrt(s)) @ u.T
    assert np.allclose(got.numpy(), root / np.sqrt(s.max()) + 0.1 * np.eye(5), atol=1e-10)


def test_predictor_of_a_rank_one_and_a_zero_correlation():
    v = torch.tensor([3.0, 4.0], dtype=torch.float64) / 5
    got = directpred_predictor(4.0 * torch.outer(v, v), eps=0.01)  # s = (0, 4)
    assert torch.allclose(got, torch.outer(v, v) + 0.01 * torch.eye(2, dtype=torch.float64))
    assert torch.allclose(directpred_predictor(torch.zeros(3, 3), eps=0.5), 0.5 * torch.eye(3))


def test_update_correlation_is_a_moving_average():
    old = torch.eye(3)
    z = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    expected = 0.3 * old + 0.7 * torch.tensor(
        [[0.5, 0.0, 1.0], [0.0, 0.5, -0.5], [1.0, -0.5, 2.5]]
    )  # E[z z^T] over the two rows
    assert torch.allclose(update_correlation(old, z, rho=0.3), expected)
    assert not update_correlation(old, z.requires_grad_(True), 0.3).requires_grad


def test_forward_sets_the_predictor_from_the_projections(backbone, views, check_contract):
    method = create_method("directpred", backbone, rho=0.3, eps=0.1, **SMALL)
    assert method.default_views == "byol"
    assert not any("predictor" in name for name, _ in method.named_parameters())
    out = check_contract(method, views)
    with torch.no_grad():  # train-mode BatchNorm: the same projections as in the forward
        z0, z1 = (method.projector(method.backbone(v)) for v in views)
        t0, t1 = (method.target(v) for v in views)
    z = torch.cat([z0, z1]).double()
    correlation = 0.7 * (z.T @ z / 12)  # F started at 0
    assert np.allclose(method.correlation.numpy(), correlation.numpy(), atol=1e-6)
    weight = _by_hand(correlation.numpy(), 0.1)
    assert np.allclose(method.predictor_weight.numpy(), weight, atol=1e-5)
    # the loss is BYOL's, with p = W_p z
    w = method.predictor_weight
    expected = (byol(z0 @ w.T, t1) + byol(z1 @ w.T, t0)) / 2
    assert torch.allclose(out["loss"], expected, rtol=1e-5)
    # the predictor is a buffer: no gradient, no optimiser state
    assert method.predictor_weight.grad is None and not method.predictor_weight.requires_grad
    assert all(p.grad is None for p in method.target.parameters())


def test_freq_and_eval_mode(backbone, views):
    method = create_method("directpred", backbone, freq=2, **SMALL)
    method(views, {})
    first = method.predictor_weight.clone()
    correlation = method.correlation.clone()
    method(views, {})  # second update: F moves, the predictor waits for the next multiple of 2
    assert not torch.allclose(method.correlation, correlation)
    assert torch.equal(method.predictor_weight, first)
    method(views, {})
    assert not torch.equal(method.predictor_weight, first)
    assert int(method.updates) == 3
    method.eval()
    frozen = method.correlation.clone()
    method(views, {})
    assert torch.equal(method.correlation, frozen) and int(method.updates) == 3
    assert {"correlation", "predictor_weight", "updates"} <= set(method.state_dict())


def test_invalid_options_are_config_errors(backbone):
    with pytest.raises(ConfigError, match="rho must be in"):
        create_method("directpred", backbone, rho=1.0)
    with pytest.raises(ConfigError, match="freq must be a positive int"):
        create_method("directpred", backbone, freq=0)

"""Graph losses against hand computations on tiny tensors, and GRACE against an explicit loop."""

from __future__ import annotations

import math

import pytest
import torch

from labelless.nn.graph_losses import bgrl, dgi, grace, sce
from labelless.nn.losses import info_nce


def test_sce_hand_computation():
    # Row 0: cos 1 -> 0; row 1: cos((1, 1), (0, 1)) = 1/sqrt(2) -> (1 - 0.70710678)^2 = 0.0857864;
    # row 2 is not masked. Mean over the 2 masked rows: 0.0428932.
    reconstruction = torch.tensor([[2.0, 0.0], [1.0, 1.0], [5.0, -3.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    mask = torch.tensor([True, True, False])
    assert math.isclose(float(sce(reconstruction, target, 2.0, mask)), 0.0428932, rel_tol=1e-5)
    # alpha = 1 over all three rows: (0 + 0.2928932 + (1 - 2/sqrt(68))) / 3; 2/sqrt(68) = 0.2425356.
    expected = (0.0 + 0.2928932 + 0.7574644) / 3
    assert math.isclose(float(sce(reconstruction, target, 1.0)), expected, rel_tol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        sce(reconstruction, target, 0.5)


def _grace_by_loop(z1, z2, t):
    """GRACE's eqs. 1-2 written out: every anchor, its positive, both kinds of negatives."""
    u = z1 / z1.norm(dim=1, keepdim=True)
    v = z2 / z2.norm(dim=1, keepdim=True)
    n = len(u)

    def single(a, b, i):
        positive = math.exp(float(a[i] @ b[i]) / t)
        inter = sum(math.exp(float(a[i] @ b[k]) / t) for k in range(n) if k != i)
        intra = sum(math.exp(float(a[i] @ a[k]) / t) for k in range(n) if k != i)
        return -math.log(positive / (positive + inter + intra))

    return sum(single(u, v, i) + single(v, u, i) for i in range(n)) / (2 * n)


def test_grace_equals_the_explicit_loop_and_nt_xent():
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(7, 5, generator=generator), torch.randn(7, 5, generator=generator)
    for t in (0.2, 0.5, 1.0):
        value = float(grace(z1, z2, t))
        assert math.isclose(value, _grace_by_loop(z1, z2, t), rel_tol=1e-5)
        assert math.isclose(value, float(info_nce(z1, z2, t)), rel_tol=1e-5)


def test_grace_hand_computation():
    # Two orthogonal nodes, identical views: positive cos 1, one inter and one intra negative at
    # cos 0. t = 0.5: -log(e^2 / (e^2 + 2)) = log(1 + 2 e^-2) = 0.2395447.
    z = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    assert math.isclose(float(grace(z, z.clone(), 0.5)), 0.2395447, rel_tol=1e-5)


def test_dgi_hand_computation():
    # Positives (logits 2, 0): log(1 + e^-2) = 0.1269280, log 2 = 0.6931472; negative (logit -1):
    # -log(1 - sigmoid(-1)) = log(1 + e^-1) = 0.3132617. Mean: 0.3777790.
    value = dgi(torch.tensor([2.0, 0.0]), torch.tensor([-1.0]))
    assert math.isclose(float(value), 0.3777790, rel_tol=1e-5)


def test_bgrl_hand_computation_and_stop_gradient():
    # cosines 1/sqrt(2) and -1: -2 * mean = -2 * (0.7071068 - 1) / 2 = 0.2928932.
    predictions = torch.tensor([[1.0, 0.0], [0.0, 3.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 1.0], [0.0, -1.0]], requires_grad=True)
    value = bgrl(predictions, targets)
    assert math.isclose(float(value.detach()), 0.2928932, rel_tol=1e-5)
    value.backward()
    assert targets.grad is None and predictions.grad is not None

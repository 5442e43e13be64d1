"""SwAV (Sinkhorn codes, swapped prediction) and DINO against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from labelless.nn.losses import dino, sinkhorn, swav, update_center


def _sinkhorn_by_hand(scores, epsilon, iterations):
    """Caron et al. 2020, Sinkhorn-Knopp on Q = exp(scores / eps)^T [K, B], as lists."""
    b, k = scores.shape
    q = [[math.exp(float(scores[i, p]) / epsilon) for i in range(b)] for p in range(k)]
    total = sum(map(sum, q))
    q = [[x / total for x in row] for row in q]
    for _ in range(iterations):
        q = [[x / sum(row) / k for x in row] for row in q]  # each prototype: mass 1/K
        columns = [sum(q[p][i] for p in range(k)) for i in range(b)]
        q = [[q[p][i] / columns[i] / b for i in range(b)] for p in range(k)]  # each sample: 1/B
    return torch.tensor([[q[p][i] * b for p in range(k)] for i in range(b)])


def test_sinkhorn_equals_hand_run_of_the_iterations():
    scores = torch.tensor([[0.9, 0.1, -0.2], [0.8, 0.3, 0.0], [0.7, -0.5, 0.2], [0.1, 0.2, 0.6]])
    for epsilon, iterations in ((0.05, 3), (0.3, 1), (0.5, 10)):
        expected = _sinkhorn_by_hand(scores, epsilon, iterations)
        assert torch.allclose(sinkhorn(scores, epsilon, iterations), expected, atol=1e-5)


def test_sinkhorn_codes_sum_to_one_and_spread_over_prototypes():
    # Every sample prefers prototype 0; equipartition still spreads the batch.
    scores = torch.rand(12, 4) * 0.5
    scores[:, 0] += 0.5
    codes = sinkhorn(scores, 0.05, iterations=3)
    assert torch.allclose(codes.sum(1), torch.ones(12), atol=1e-5)
    assert float(codes[:, 0].sum()) < 6.0  # far below 12 despite every sample preferring it
    converged = sinkhorn(scores, 0.05, iterations=200)
    assert torch.allclose(converged.sum(1), torch.ones(12), atol=1e-5)
    assert torch.allclose(converged.sum(0), torch.full((4,), 12 / 4), atol=1e-3)


def test_sinkhorn_is_a_stable_target():
    scores = torch.randn(6, 5, requires_grad=True)
    codes = sinkhorn(scores)
    assert not codes.requires_grad
    # A shift of every score cancels; large scores do not overflow.
    assert torch.allclose(sinkhorn(scores + 30.0), codes, atol=1e-5)
    assert torch.isfinite(sinkhorn(scores * 50)).all()


def _cross_entropy_by_hand(targets, logits, temperature):
    """-1/B sum_b sum_k targets_bk log softmax(logits_b / t)_k, as loops."""
    total = 0.0
    for b in range(len(targets)):
        row = [float(x) / temperature for x in logits[b]]
        log_normaliser = math.log(sum(math.exp(x) for x in row))
        total -= sum(float(q) * (x - log_normaliser) for q, x in zip(targets[b], row, strict=True))
    return total / len(targets)


def test_swav_equals_loop():
    scores = torch.tensor([[0.9, 0.1, -0.2], [0.3, 0.8, 0.0]])
    codes = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    for t in (0.1, 1.0):
        expected = _cross_entropy_by_hand(codes, scores, t)
        assert math.isclose(float(swav(scores, codes, t)), expected, rel_tol=1e-5)
    # Uniform codes over uniform scores: log K.
    assert math.isclose(
        float(swav(torch.zeros(4, 5), torch.full((4, 5), 0.2))), math.log(5), rel_tol=1e-6
    )


def test_swav_swapped_prediction_trains_scores_not_codes():
    scores0 = torch.randn(8, 4, requires_grad=True)
    scores1 = torch.randn(8, 4, requires_grad=True)
    codes0, codes1 = sinkhorn(scores0), sinkhorn(scores1)
    loss = (swav(scores1, codes0) + swav(scores0, codes1)) / 2
    loss.backward()
    # The gradient of each view comes only from its prediction: softmax(s/t) - codes, / (B t).
    expected0 = (torch.softmax(scores0.detach() / 0.1, 1) - codes1) / (8 * 0.1) / 2
    assert torch.allclose(scores0.grad, expected0, atol=1e-5)


def _softmax(values, temperature):
    exps = [math.exp(v / temperature) for v in values]
    return [e / sum(exps) for e in exps]


def test_dino_equals_loop():
    student = torch.tensor([[1.0, 0.5, -0.5, 0.0], [0.2, 0.1, 0.3, -1.0]])
    teacher = torch.tensor([[0.3, 0.9, 0.0, -0.2], [0.5, 0.5, 0.1, 0.0]])
    center = torch.tensor([0.1, 0.2, 0.0, -0.1])
    targets = [
        _softmax([float(teacher[b, k] - center[k]) for k in range(4)], 0.04) for b in range(2)
    ]
    expected = _cross_entropy_by_hand(targets, student, 0.1)
    assert math.isclose(float(dino(student, teacher, center)), expected, rel_tol=1e-5)
    # A [1, K] centre gives the same loss.
    assert torch.allclose(dino(student, teacher, center[None]), dino(student, teacher, center))


def test_dino_closed_form_and_stop_gradient():
    # Teacher equal to the centre: uniform targets; zero student logits: log K.
    teacher = torch.randn(3, 6, requires_grad=True)
    center = teacher.detach()[0].clone()
    teacher_rows = center.expand(3, 6).clone().requires_grad_(True)
    student = torch.zeros(3, 6, requires_grad=True)
    loss = dino(student, teacher_rows, center)
    assert math.isclose(float(loss.detach()), math.log(6), rel_tol=1e-6)
    loss.backward()
    assert teacher_rows.grad is None and student.grad is not None


def test_update_center_is_an_exponential_moving_average_of_batch_means():
    teacher = torch.tensor([[1.0, 2.0, 0.0], [3.0, -2.0, 1.0]])
    center = torch.tensor([0.5, 0.0, -1.0])
    new = update_center(center, teacher, momentum=0.9)
    expected = [0.9 * c + 0.1 * (teacher[0, k] + teacher[1, k]) / 2 for k, c in enumerate(center)]
    assert torch.allclose(new, torch.tensor(expected))
    assert update_center(center[None], teacher).shape == (1, 3)
    assert torch.equal(center, torch.tensor([0.5, 0.0, -1.0]))  # the input is left alone


def test_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        swav(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="same shape"):
        dino(torch.randn(4, 3), torch.randn(4, 2), torch.zeros(3))

"""SEED's loss (nn/losses_distill.py) against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from labelless.nn.losses_distill import seed_loss


def _unit(rows: list[list[float]]) -> list[list[float]]:
    return [[v / math.sqrt(sum(x * x for x in row)) for v in row] for row in rows]


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def _by_hand(student, teacher, queue, tau_s, tau_t) -> float:
    """Fang et al. 2021, eq. 2-4, one sample at a time in plain Python."""
    student, teacher, queue = _unit(student), _unit(teacher), _unit(queue)
    total = 0.0
    for s, t in zip(student, teacher, strict=True):
        anchors = [t, *queue]
        p_teacher = _softmax([_dot(t, a) / tau_t for a in anchors])
        p_student = _softmax([_dot(s, a) / tau_s for a in anchors])
        total += -sum(pt * math.log(ps) for pt, ps in zip(p_teacher, p_student, strict=True))
    return total / len(student)


STUDENT = [[1.0, 0.5, -0.2], [0.1, -1.0, 0.3]]
TEACHER = [[0.8, 0.4, 0.1], [-0.3, -0.9, 0.2]]
QUEUE = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.3, -0.2, 0.9]]


@pytest.mark.parametrize("tau_s, tau_t", [(0.2, 0.1), (0.5, 0.5), (0.2, 0.05)])
def test_seed_loss_equals_the_hand_computation(tau_s, tau_t):
    loss = seed_loss(
        torch.tensor(STUDENT, dtype=torch.float64),
        torch.tensor(TEACHER, dtype=torch.float64),
        torch.tensor(QUEUE, dtype=torch.float64),
        tau_s,
        tau_t,
    )
    assert float(loss) == pytest.approx(_by_hand(STUDENT, TEACHER, QUEUE, tau_s, tau_t), rel=1e-9)


def test_a_cold_teacher_makes_it_the_cross_entropy_of_the_teacher_embedding():
    """At the released code's teacher temperature (1e-4) the teacher's distribution is one-hot
    on its own embedding, so the loss is -log p_student(t_i)."""
    student, teacher = torch.tensor(STUDENT), torch.tensor(TEACHER)
    loss = seed_loss(student, teacher, torch.tensor(QUEUE), 0.2, 1e-4)
    s, t = _unit(STUDENT), _unit(TEACHER)
    expected = 0.0
    for row_s, row_t in zip(s, t, strict=True):
        logits = [_dot(row_s, a) / 0.2 for a in [row_t, *_unit(QUEUE)]]
        expected += -math.log(_softmax(logits)[0])
    assert float(loss) == pytest.approx(expected / 2, rel=1e-5)


def test_an_empty_queue_gives_zero_and_only_the_student_gets_gradient():
    student = torch.tensor(STUDENT, requires_grad=True)
    teacher = torch.tensor(TEACHER, requires_grad=True)
    assert float(seed_loss(student, teacher, torch.zeros(0, 3)).detach()) == 0.0
    seed_loss(student, teacher, torch.tensor(QUEUE)).backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0
    assert teacher.grad is None

"""Min-norm task weights (Sener & Koltun 2018): known two-task answers and a grid search."""

from __future__ import annotations

import itertools

import pytest
import torch

from labelless.nn.min_norm import min_norm_weights


@pytest.mark.parametrize(
    ("g1", "g2", "expected"),
    [
        ((1.0, 0.0), (0.0, 1.0), (0.5, 0.5)),  # orthogonal, equal norms: the midpoint
        ((1.0, 0.0), (2.0, 0.0), (1.0, 0.0)),  # same direction: all weight on the shorter
        ((1.0, 0.0), (-1.0, 0.0), (0.5, 0.5)),  # opposite: the origin, Pareto-stationary
        # (3, 0) and (0, 1): |g3 w + (1 - w) g2|^2 = 9 w^2 + (1 - w)^2, minimum at w = 1 / 10.
        ((3.0, 0.0), (0.0, 1.0), (0.1, 0.9)),
    ],
)
def test_two_tasks_closed_form(g1, g2, expected):
    weights = min_norm_weights(torch.tensor([g1, g2]))
    assert torch.allclose(weights, torch.tensor(expected), atol=1e-6)


def test_three_tasks_match_a_grid_search_over_the_simplex():
    gradients = torch.tensor(
        [[1.0, 2.0, -0.5, 0.3], [-1.5, 0.5, 1.0, 0.2], [0.4, -1.0, 0.8, -0.6]],
        dtype=torch.float64,
    )
    weights = min_norm_weights(gradients)
    assert bool((weights >= 0).all()) and abs(float(weights.sum()) - 1) < 1e-9
    step = 0.002
    steps = round(1 / step)
    grid = torch.tensor(
        [
            (i * step, j * step, 1 - (i + j) * step)
            for i, j in itertools.product(range(steps + 1), repeat=2)
            if i + j <= steps
        ],
        dtype=torch.float64,
    )
    norms = (grid @ gradients).pow(2).sum(1)
    best = grid[torch.argmin(norms)]
    value = float((weights @ gradients).pow(2).sum())
    assert value <= float(norms.min()) + 1e-9
    assert torch.allclose(weights, best, atol=2 * step)


def test_single_task_and_sequences_of_tensors():
    assert torch.equal(min_norm_weights(torch.randn(1, 5)), torch.ones(1))
    weights = min_norm_weights([torch.ones(2, 2), -torch.ones(4)])
    assert torch.allclose(weights, torch.tensor([0.5, 0.5]))

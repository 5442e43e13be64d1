"""Multi-task weights by multiple-gradient descent: the min-norm point of the convex hull of the
task gradients (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS
2018, section 3.2; the weighting ParetoGNN uses, Ju et al. 2023).

    min_w | sum_k w_k g_k |^2   subject to   w_k >= 0, sum_k w_k = 1

Two tasks have a closed form (their Algorithm 1); more use Frank-Wolfe (their Algorithm 2)
started from the best pair. Everything runs on the K x K Gram matrix in float64, so the cost is
one ``[K, D] @ [D, K]`` product whatever the number of parameters D.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _line_search(v11: Tensor, v12: Tensor, v22: Tensor) -> Tensor:
    """The gamma in [0, 1] minimising |gamma a + (1 - gamma) b|^2 given a.a, a.b, b.b."""
    curvature = v11 + v22 - 2.0 * v12
    if float(curvature) <= 0.0:  # a == b: every gamma gives the same point
        return torch.full_like(v11, 0.5)
    return ((v22 - v12) / curvature).clamp(0.0, 1.0)


def _best_pair(gram: Tensor) -> Tensor:
    """Weights of the min-norm point over every pair of tasks (and single tasks)."""
    count = gram.shape[0]
    best, best_value = None, float("inf")
    for i in range(count):
        for j in range(i + 1, count):
            gamma = _line_search(gram[i, i], gram[i, j], gram[j, j])
            weights = torch.zeros(count, dtype=gram.dtype, device=gram.device)
            weights[i], weights[j] = gamma, 1.0 - gamma
            value = float(weights @ gram @ weights)
            if value < best_value:
                best, best_value = weights, value
    return best


def min_norm_weights(
    gradients: Tensor | Sequence[Tensor], max_iterations: int = 250, tolerance: float = 1e-6
) -> Tensor:
    """Weights ``[K]`` (non-negative, summing to 1) of the min-norm point in the convex hull of
    the K task gradients; ``sum_k w_k g_k`` is then a descent direction for every task, or zero at
    a Pareto-stationary point.

    ``gradients``: ``[K, D]``, or K tensors (each flattened; e.g. one task's gradients of the
    shared parameters, concatenated). Frank-Wolfe stops after ``max_iterations`` or when the
    weights move less than ``tolerance`` (L1). Returns the gradients' float dtype and device.
    """
    if not isinstance(gradients, Tensor):
        gradients = torch.stack([g.reshape(-1) for g in gradients])
    if gradients.ndim != 2 or gradients.shape[0] == 0:
        raise ValueError(f"gradients must be [tasks, parameters], got {tuple(gradients.shape)}")
    dtype = gradients.dtype if gradients.is_floating_point() else torch.float32
    matrix = gradients.detach().to(torch.float64)
    gram = matrix @ matrix.T
    if gram.shape[0] == 1:
        return torch.ones(1, dtype=dtype, device=gradients.device)
    weights = _best_pair(gram)
    for _ in range(max_iterations):
        pulled = gram @ weights  # gradient of w^T G w / 2
        vertex = int(torch.argmin(pulled))
        gamma = _line_search(weights @ pulled, pulled[vertex], gram[vertex, vertex])
        updated = gamma * weights
        updated[vertex] += 1.0 - gamma
        moved = float((updated - weights).abs().sum())
        weights = updated
        if moved < tolerance:
            break
    return weights.to(dtype)

"""Many L2-regularised softmax regressions on the same features, fitted together.

The linear probe's grid of weight decays is ``H`` independent convex problems over one feature
matrix. :func:`fit_softmax_heads` solves them in one loop: every iteration is one pass over the
rows for all the heads still running (one ``[N, D] x [D, H * C]`` product instead of ``H``
narrow ones, which are memory-bound on a CPU), while each head keeps its own L-BFGS history,
step size and stopping test, so a head follows the path it would follow alone and stops when it
has converged (Nocedal & Wright 2006, "Numerical Optimization", Algorithms 7.4 and 7.5, with a
backtracking Armijo line search). The gradient is written out (softmax minus one-hot) rather
than taken by autograd, and the rows go in chunks, so memory stays bounded for large ``N x C``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from labelless.progress import SILENT, Task

HISTORY = 10  # curvature pairs kept per head
ARMIJO = 1e-4  # sufficient-decrease constant of the line search
MAX_HALVINGS = 30
TOLERANCE_GRAD = 1e-5  # a head stops when every gradient entry is below this
TOLERANCE_CHANGE = 1e-9  # ... or when its loss or its step changes less than this
LOGIT_BYTES = 64 * 2**20  # rows per chunk: their [rows, H * C] logits fit in this


@dataclass
class SoftmaxFit:
    """``H`` fitted heads: ``weight [H, C, D]`` (nn.Linear's layout), ``bias [H, C]``, the final
    regularised ``loss [H]``, the L-BFGS ``iterations [H]`` of each head and the ``passes`` over
    the rows the whole fit made."""

    weight: torch.Tensor
    bias: torch.Tensor
    loss: torch.Tensor
    iterations: torch.Tensor
    passes: int


def softmax_objective(
    x: torch.Tensor, y: torch.Tensor, params: torch.Tensor, weight_decays: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss ``[H]`` and gradient ``[H, C, D + 1]`` of ``H`` softmax regressions.

    ``params [H, C, D + 1]`` holds each head's weight and, in the last column, its bias; the
    loss of head h is ``mean cross-entropy + weight_decays[h] / 2 * ||W_h||^2`` (the bias is not
    penalised) over ``x [N, D]`` and labels ``y [N]``.
    """
    heads, classes, width = params.shape
    weight = params[..., :-1].reshape(heads * classes, width - 1)
    bias = params[..., -1].reshape(heads * classes)
    total = torch.zeros(heads, dtype=torch.float64, device=x.device)
    grad_weight = torch.zeros(heads * classes, width - 1, device=x.device)
    grad_bias = torch.zeros(heads * classes, device=x.device)
    chunk = max(1, LOGIT_BYTES // (4 * heads * classes))
    for start in range(0, len(x), chunk):
        rows, labels = x[start : start + chunk], y[start : start + chunk]
        picked = labels.view(-1, 1, 1).expand(len(rows), heads, 1)
        log_p = torch.addmm(bias, rows, weight.T).view(len(rows), heads, classes).log_softmax(2)
        total -= log_p.gather(2, picked).sum(dim=(0, 2), dtype=torch.float64)
        residual = log_p.exp_().scatter_add_(2, picked, torch.full_like(log_p[..., :1], -1.0))
        residual = residual.view(len(rows), heads * classes)
        grad_weight.addmm_(residual.T, rows)
        grad_bias += residual.sum(dim=0)
    penalty = params[..., :-1]
    loss = (total / len(x)).float() + 0.5 * weight_decays * penalty.square().sum(dim=(1, 2))
    grad = torch.cat(
        [grad_weight.view(heads, classes, -1), grad_bias.view(heads, classes, 1)], dim=2
    ).div_(len(x))
    grad[..., :-1] += weight_decays.view(-1, 1, 1) * penalty
    return loss, grad


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-head inner products of ``[H, ...]`` tensors: ``[H]``."""
    return (a * b).flatten(1).sum(dim=1)


def _direction(grad, history, gamma, heads) -> torch.Tensor:
    """The L-BFGS two-loop recursion for the heads ``heads``: ``-H_k g`` per head. A pair with
    ``rho = 0`` (a head that skipped that update) has no effect on that head."""
    q = grad.clone()
    alphas = []
    for s, y, rho in reversed(history):
        alpha = rho[heads] * _dot(s[heads], q)
        q -= alpha.view(-1, 1, 1) * y[heads]
        alphas.append(alpha)
    r = q.mul_(gamma[heads].view(-1, 1, 1))
    for (s, y, rho), alpha in zip(history, reversed(alphas), strict=True):
        beta = rho[heads] * _dot(y[heads], r)
        r += (alpha - beta).view(-1, 1, 1) * s[heads]
    direction = r.neg_()
    uphill = _dot(grad, direction) >= 0  # numerically not a descent direction: use -g
    direction[uphill] = -grad[uphill]
    return direction


def _line_search(x, y, decays, base, loss, grad, direction, bar):
    """Backtracking Armijo steps from 1, halved per head until each head's loss falls enough;
    one pass over the rows per trial for the heads still searching. Returns the step taken
    (0 where none was found), the new loss and gradient, and the passes made."""
    slope = _dot(grad, direction)
    step = torch.ones(len(base), device=x.device)
    new_loss, new_grad = loss.clone(), grad.clone()
    searching = torch.ones(len(base), dtype=torch.bool, device=x.device)
    passes = 0
    for _ in range(MAX_HALVINGS):
        open_rows = searching.nonzero().squeeze(1)
        trial_step = step[open_rows].view(-1, 1, 1)
        trial = base[open_rows] + trial_step * direction[open_rows]
        trial_loss, trial_grad = softmax_objective(x, y, trial, decays[open_rows])
        passes += 1
        bar.advance()
        accepted = trial_loss <= loss[open_rows] + ARMIJO * step[open_rows] * slope[open_rows]
        done = open_rows[accepted]
        new_loss[done], new_grad[done] = trial_loss[accepted], trial_grad[accepted]
        searching[done] = False
        step[open_rows[~accepted]] *= 0.5
        if not bool(searching.any()):
            break
    step[searching] = 0.0
    return step, new_loss, new_grad, passes


def fit_softmax_heads(
    x: torch.Tensor,
    y: torch.Tensor,
    weight_decays: Sequence[float],
    num_classes: int,
    max_iter: int,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    bar: Task = SILENT,
) -> SoftmaxFit:
    """One softmax regression per weight decay on ``x [N, D]`` (float32) and ``y [N]``, fitted
    together; each head runs at most ``max_iter`` L-BFGS iterations from zero or from ``start =
    (weight [H, C, D], bias [H, C])``. ``bar`` advances once per pass over the rows."""
    heads, dim = len(weight_decays), x.shape[1]
    decays = torch.tensor([float(w) for w in weight_decays], device=x.device)
    params = torch.zeros(heads, num_classes, dim + 1, device=x.device)
    if start is not None:
        params[..., :-1], params[..., -1] = start[0], start[1]
    loss, grad = softmax_objective(x, y, params, decays)
    passes, history = 1, []
    gamma = grad.abs().flatten(1).sum(dim=1).reciprocal().clamp(max=1.0)  # first step's scale
    active = grad.abs().flatten(1).amax(dim=1) > TOLERANCE_GRAD
    iterations = torch.zeros(heads, dtype=torch.long)
    for _ in range(max_iter):
        heads_on = active.nonzero().squeeze(1)
        if len(heads_on) == 0:
            break
        g = grad[heads_on]
        direction = _direction(g, history, gamma, heads_on)
        step, new_loss, new_grad, used = _line_search(
            x, y, decays[heads_on], params[heads_on], loss[heads_on], g, direction, bar
        )
        passes += used
        s = step.view(-1, 1, 1) * direction
        change = new_grad - g
        curvature = _dot(s, change)
        kept = curvature > 1e-10  # a convex loss gives s.y >= 0; skip flat pairs
        pair_s, pair_y = torch.zeros_like(params), torch.zeros_like(params)
        pair_s[heads_on], pair_y[heads_on] = s, change
        rho = torch.zeros(heads, device=x.device)
        rho[heads_on[kept]] = curvature[kept].reciprocal()
        gamma[heads_on[kept]] = curvature[kept] / _dot(change[kept], change[kept])
        history = [*history[-(HISTORY - 1) :], (pair_s, pair_y, rho)]
        params[heads_on] += s
        stalled = (loss[heads_on] - new_loss).abs() < TOLERANCE_CHANGE
        stalled |= s.abs().flatten(1).amax(dim=1) < TOLERANCE_CHANGE
        loss[heads_on], grad[heads_on] = new_loss, new_grad
        iterations[heads_on.cpu()] += 1
        converged = new_grad.abs().flatten(1).amax(dim=1) <= TOLERANCE_GRAD
        active[heads_on[stalled | converged | (step == 0)]] = False
    return SoftmaxFit(params[..., :-1], params[..., -1], loss, iterations, passes)


def score_heads(
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> tuple[list[float], list[float]]:
    """Accuracy and mean cross-entropy of each head ``(weight [H, C, D], bias [H, C])`` on
    ``x [N, D]`` (standardised with ``mean`` / ``std`` first when given) and ``y [N]``, rows in
    chunks of ``LOGIT_BYTES`` of logits."""
    heads, classes, _ = weight.shape
    correct = torch.zeros(heads, dtype=torch.float64, device=x.device)
    total = torch.zeros(heads, dtype=torch.float64, device=x.device)
    chunk = max(1, LOGIT_BYTES // (4 * heads * classes))
    flat_weight, flat_bias = weight.reshape(heads * classes, -1), bias.reshape(-1)
    with torch.no_grad():
        for start in range(0, len(x), chunk):
            rows, labels = x[start : start + chunk], y[start : start + chunk]
            if mean is not None and std is not None:
                rows = (rows - mean) / std
            logits = torch.addmm(flat_bias, rows, flat_weight.T).view(len(rows), heads, classes)
            correct += (logits.argmax(dim=2) == labels[:, None]).sum(dim=0)
            picked = labels.view(-1, 1, 1).expand(len(rows), heads, 1)
            total -= logits.log_softmax(2).gather(2, picked).sum(dim=(0, 2), dtype=torch.float64)
    return (correct / len(x)).tolist(), (total / len(x)).tolist()

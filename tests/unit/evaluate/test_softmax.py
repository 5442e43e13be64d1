"""Softmax regressions fitted together: the written-out gradient is autograd's, one head's fit
reaches torch's L-BFGS optimum, and a grid of weight decays fitted in the same passes gives
each decay the fit it gets alone, in fewer passes over the rows than fitting them one by one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from labelless.evaluate.softmax import fit_softmax_heads, score_heads, softmax_objective

DECAYS = (0.1, 1e-2, 1e-3, 1e-4)


def overlapping(count: int = 1200, dim: int = 20, classes: int = 4, seed: int = 0):
    """Standardised features of overlapping classes: every decay has a finite optimum."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=generator) * 0.4
    labels = torch.randint(0, classes, (count,), generator=generator)
    x = centres[labels] + torch.randn(count, dim, generator=generator)
    return (x - x.mean(0)) / x.std(0), labels


def test_gradient_is_autograds(monkeypatch):
    monkeypatch.setattr("labelless.evaluate.softmax.LOGIT_BYTES", 4 * 2 * 3 * 7)  # 7-row chunks
    x, y = overlapping(50, dim=6, classes=3)
    params = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(1))
    decays = torch.tensor([0.0, 0.3])
    loss, grad = softmax_objective(x, y, params, decays)
    leaf = params.clone().requires_grad_(True)
    expected = torch.stack(
        [
            F.cross_entropy(x @ leaf[h, :, :-1].T + leaf[h, :, -1], y)
            + 0.5 * decays[h] * leaf[h, :, :-1].square().sum()
            for h in range(2)
        ]
    )
    expected.sum().backward()
    torch.testing.assert_close(loss, expected.detach())
    torch.testing.assert_close(grad, leaf.grad)


def test_one_head_reaches_torch_lbfgs_optimum():
    x, y = overlapping()
    fit = fit_softmax_heads(x, y, [1e-2], 4, max_iter=200)
    weight = torch.zeros(4, 20, requires_grad=True)
    bias = torch.zeros(4, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], max_iter=100, tolerance_grad=1e-6, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5e-2 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    assert float(fit.loss[0]) == pytest.approx(float(closure().detach()), rel=1e-5)
    torch.testing.assert_close(fit.weight[0], weight.detach(), atol=2e-3, rtol=0)


def test_grid_fitted_together_matches_each_decay_alone_in_fewer_passes():
    x, y = overlapping()
    together = fit_softmax_heads(x, y, DECAYS, 4, max_iter=100)
    alone = [fit_softmax_heads(x, y, [decay], 4, max_iter=100) for decay in DECAYS]
    for head, single in enumerate(alone):
        torch.testing.assert_close(together.weight[head], single.weight[0], atol=1e-4, rtol=0)
        torch.testing.assert_close(together.bias[head], single.bias[0], atol=1e-4, rtol=0)
        assert float(together.loss[head]) == pytest.approx(float(single.loss[0]), rel=1e-6)
        assert abs(int(together.iterations[head]) - int(single.iterations[0])) <= 1
    # Heads share passes over the rows: the grid costs about its slowest head, not the sum.
    assert together.passes <= 1.5 * max(single.passes for single in alone)
    assert together.passes < 0.5 * sum(single.passes for single in alone)
    # Stronger decay, smaller weights: the heads are distinct fits.
    norms = together.weight.flatten(1).norm(dim=1)
    assert (norms[1:] > norms[:-1]).all()


def test_scores_of_every_head_in_chunks_match_one_product(monkeypatch):
    x, y = overlapping(300, dim=6, classes=3)
    fit = fit_softmax_heads(x, y, DECAYS, 3, max_iter=30)
    logits = torch.einsum("nd,hcd->nhc", x, fit.weight) + fit.bias
    accuracy = (logits.argmax(dim=2) == y[:, None]).double().mean(dim=0)
    loss = [float(F.cross_entropy(logits[:, h], y)) for h in range(len(DECAYS))]
    monkeypatch.setattr("labelless.evaluate.softmax.LOGIT_BYTES", 4 * len(DECAYS) * 3 * 64)
    chunked = score_heads(x, y, fit.weight, fit.bias)  # 64-row chunks
    assert chunked[0] == pytest.approx(accuracy.tolist(), abs=1e-12)
    assert chunked[1] == pytest.approx(loss, rel=1e-5)
    mean, std = torch.full((6,), 0.5), torch.full((6,), 2.0)
    standardised = score_heads(x * 2.0 + 0.5, y, fit.weight, fit.bias, mean, std)
    assert standardised[0] == pytest.approx(chunked[0], abs=1e-12)

"""Reference tests: on fixed predictions and a fixed state, each algorithm's weights,
pseudo-labels and running statistics equal the values computed step by step the way the
authors' reference code computes them (issue 23). Each test's docstring names the reference
file and function; the reference computation is re-derived here from that code's behaviour,
in plain torch, independently of labelless's implementation."""

from __future__ import annotations

import pytest
import torch

from labelless.semi.algorithms import create_algorithm
from labelless.semi.state import SampleState

from .conftest import TinyEncoder

CLASSES = 4


def _predictions(steps: int = 4, batch: int = 16, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = [torch.randn(batch, CLASSES, generator=generator) * 2 for _ in range(steps)]
    return [torch.softmax(x.double(), dim=-1).float() for x in logits]


START = {"mu": 0.8, "var": 0.02, "p_model": torch.tensor([0.4, 0.3, 0.2, 0.1])}


def _usb_softmatch(
    batches: list[torch.Tensor], n_sigma: float = 2.0, m: float = 0.999, start: dict | None = None
):
    """USB (microsoft/Semi-supervised-learning) ``semilearn/algorithms/softmatch/softmatch.py``
    ``SoftMatch.train_step`` with ``DistAlignEMAHook.dist_align`` (``hooks/dist_align.py``,
    p_target uniform, p_model None until the first batch) and ``SoftMatchWeightingHook.masking``
    (``softmatch/utils.py``, per_class False): statistics updated, then the mask taken; the
    pseudo-label is the argmax of the raw (unaligned) prediction."""
    p_model, mu, var = None, torch.tensor(1.0 / CLASSES), torch.tensor(1.0)
    if start is not None:  # a state mid-training: hooks whose EMAs have moved
        p_model, mu, var = (
            start["p_model"].clone(),
            torch.tensor(start["mu"]),
            torch.tensor(start["var"]),
        )
    p_target = torch.ones(CLASSES) / CLASSES
    out = []
    for probs in batches:
        mean_probs = probs.mean(dim=0)
        p_model = mean_probs if p_model is None else p_model * m + mean_probs * (1 - m)
        aligned = probs * (p_target + 1e-6) / (p_model + 1e-6)
        aligned = aligned / aligned.sum(dim=-1, keepdim=True)
        max_probs = aligned.max(dim=-1).values
        mu = m * mu + (1 - m) * max_probs.mean().item()
        var = m * var + (1 - m) * torch.var(max_probs, unbiased=True).item()
        mask = torch.exp(-(torch.clamp(max_probs - mu, max=0.0) ** 2) / (2 * var / n_sigma**2))
        out.append((mask, probs.argmax(dim=-1), mu.clone(), var.clone(), p_model.clone()))
    return out


def _softmatch(start: dict | None = None, **options):
    algorithm = create_algorithm(
        "softmatch", TinyEncoder(), CLASSES, SampleState(64, torch.arange(64)), **options
    )
    if start is not None:
        algorithm.confidence_mean.fill_(start["mu"])
        algorithm.confidence_var.fill_(start["var"])
        algorithm.class_probs.copy_(start["p_model"])
        algorithm.class_probs_started.fill_(True)
    return algorithm


@pytest.mark.parametrize("start", [None, START], ids=["first-steps", "mid-training"])
def test_softmatch_matches_usb_over_several_steps(start):
    algorithm = _softmatch(start)
    batches = _predictions()
    expected = _usb_softmatch(batches, start=start)
    if start is not None:  # the weights are not all 1: the test can see the Gaussian's width
        assert float(torch.stack([row[0] for row in expected]).min()) < 0.5
    for probs, (mask, pseudo, mu, var, p_model) in zip(batches, expected, strict=True):
        weights, labels = algorithm.weights(probs, {})
        assert torch.allclose(weights, mask.float(), atol=1e-6, rtol=0)
        assert torch.equal(labels, pseudo)
        assert abs(float(algorithm.confidence_mean) - float(mu)) < 1e-7
        assert abs(float(algorithm.confidence_var) - float(var)) < 1e-7
        assert torch.allclose(algorithm.class_probs, p_model, atol=1e-7, rtol=0)


def test_softmatch_n_sigma_one_is_the_papers_equation():
    """Chen et al. 2023, eq. 7: ``exp(-(max p - mu)^2 / (2 sigma^2))``, n_sigma = 1."""
    algorithm = _softmatch(START, n_sigma=1.0)
    batches = _predictions(steps=2, seed=3)
    paper = _usb_softmatch(batches, n_sigma=1.0, start=START)
    for probs, (mask, *_) in zip(batches, paper, strict=True):
        weights, _ = algorithm.weights(probs, {})
        assert torch.allclose(weights, mask.float(), atol=1e-6, rtol=0)
    wide = paper[-1][0]
    narrow = _usb_softmatch(batches, n_sigma=2.0, start=START)[-1][0]
    assert (narrow <= wide + 1e-12).all() and (narrow < wide).any()


def test_softmatch_aligned_pseudo_labels_option():
    algorithm = create_algorithm(
        "softmatch", TinyEncoder(), CLASSES, SampleState(64, torch.arange(64)),
        aligned_pseudo_labels=True,
    )  # fmt: skip
    probs = _predictions(steps=1, seed=5)[0]
    _, labels = algorithm.weights(probs, {})
    aligned = probs * (0.25 + 1e-6) / (probs.mean(dim=0) + 1e-6)
    assert torch.equal(labels, aligned.argmax(dim=-1))

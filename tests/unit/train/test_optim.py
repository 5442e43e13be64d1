"""Optimisers and the learning-rate schedules (values against hand computation)."""

from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch
from torch import nn

from labelless.errors import ConfigError
from labelless.train.optim import (
    LARS,
    build_optimizer,
    infinite_schedule,
    lr_multiplier,
    parameter_groups,
    warmup_cosine,
)


def test_warmup_cosine_hand_values():
    # warm-up over the first 10% of the run, then a half cosine to min_ratio at progress 1
    assert warmup_cosine(0.0, 0.1) == 0.0
    assert warmup_cosine(0.05, 0.1) == pytest.approx(0.5)
    assert warmup_cosine(0.1, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(0.55, 0.1) == pytest.approx(0.5)  # halfway through the decay
    assert warmup_cosine(0.775, 0.1) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))
    assert warmup_cosine(1.0, 0.1) == 0.0
    assert warmup_cosine(0.55, 0.1, min_ratio=0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert warmup_cosine(1.0, 0.1, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(0.0, 0.0) == 1.0  # no warm-up: starts at the peak


def test_warmup_cosine_in_steps_ends_at_min_on_the_last_step():
    total, warm = 101, 10  # progress = step / (total - 1)
    values = [warmup_cosine(s / (total - 1), warm / (total - 1)) for s in range(total)]
    assert values[5] == pytest.approx(0.5) and values[10] == pytest.approx(1.0)
    assert values[-1] == 0.0 and values[-2] > 0.0
    assert all(a <= b for a, b in itertools.pairwise(values[:11]))
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))


INFINITE = {"constant_ratio": 0.5, "cooldown": 0.2, "anneal": 0.1, "min_ratio": 0.01}


def _at(q: float, warmup: float = 0.1) -> float:
    """Run progress at position ``q`` of the part after the warm-up."""
    return warmup + (1 - warmup) * q


def test_infinite_schedule_hand_values():
    f = functools.partial(infinite_schedule, warmup=0.1, **INFINITE)
    assert f(0.05) == pytest.approx(0.5)  # warm-up
    assert f(_at(0.0)) == pytest.approx(1.0)  # peak
    assert f(_at(0.1)) == pytest.approx(0.75)  # cosine cooldown, halfway from 1 to 0.5
    assert f(_at(0.2)) == pytest.approx(0.5)  # constant phase ...
    assert f(_at(0.5)) == pytest.approx(0.5)
    assert f(_at(0.9)) == pytest.approx(0.5)  # ... until the annealing starts
    assert f(_at(0.95)) == pytest.approx(0.5 * (0.01 / 0.5) ** 0.5)  # exponential annealing
    assert f(1.0) == pytest.approx(0.01)
    # min_ratio 0: an exponential cannot reach 0, the annealing is linear
    g = functools.partial(infinite_schedule, warmup=0.1, **{**INFINITE, "min_ratio": 0.0})
    assert g(_at(0.95)) == pytest.approx(0.25) and g(1.0) == 0.0
    # no annealing phase: the run ends at the constant LR (to be continued later)
    assert infinite_schedule(1.0, 0.1, **{**INFINITE, "anneal": 0.0}) == pytest.approx(0.5)


@pytest.mark.parametrize("min_ratio", [0.0, 0.01])
def test_infinite_schedule_continuous_and_non_increasing(min_ratio):
    params = {**INFINITE, "min_ratio": min_ratio}
    for boundary in (0.1, _at(0.2), _at(0.9)):
        below = infinite_schedule(boundary - 1e-9, 0.1, **params)
        above = infinite_schedule(boundary + 1e-9, 0.1, **params)
        assert below == pytest.approx(above, abs=1e-6), boundary
    grid = [i / 10_000 for i in range(10_001)]
    values = [infinite_schedule(p, 0.1, **params) for p in grid]
    decay = values[1000:]
    assert all(a >= b for a, b in itertools.pairwise(decay))
    assert all(a <= b for a, b in itertools.pairwise(values[:1001]))


def test_lr_multiplier_dispatches_and_rejects_unknown_names():
    assert lr_multiplier("cosine", 0.55, 0.1, min_ratio=0.0) == pytest.approx(0.5)
    assert lr_multiplier("infinite", 0.5, 0.1, **INFINITE) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="unknown learning-rate schedule 'linear'"):
        lr_multiplier("linear", 0.5, 0.1)


def test_lars_step_uses_trust_ratio():
    weight = nn.Parameter(torch.tensor([3.0, 4.0]))  # norm 5
    bias = nn.Parameter(torch.tensor([1.0]))
    opt = LARS(
        [{"params": [weight]}, {"params": [bias], "lars": False}],
        lr=0.1,
        momentum=0.0,
        weight_decay=0.0,
        eta=0.02,
    )
    weight.grad = torch.tensor([0.0, 10.0])  # norm 10
    bias.grad = torch.tensor([2.0])
    opt.step()
    trust = 0.02 * 5 / 10
    assert torch.allclose(weight.detach(), torch.tensor([3.0, 4.0 - 0.1 * trust * 10.0]))
    assert torch.allclose(bias.detach(), torch.tensor([1.0 - 0.1 * 2.0]))


def test_parameter_groups_exclude_biases_and_norms():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    decay, no_decay = parameter_groups(model, 1e-4)
    assert [p.shape for p in decay["params"]] == [torch.Size([3, 4])]
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0


@pytest.mark.parametrize("name", ["sgd", "lars", "adamw"])
def test_build_optimizer_reduces_a_quadratic(name):
    model = nn.Linear(3, 1)
    opt = build_optimizer(model, name, lr=0.05, weight_decay=0.0)
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    first = None
    for _ in range(50):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    assert loss.item() < first


def test_unknown_optimizer():
    with pytest.raises(ConfigError, match="unknown optimizer"):
        build_optimizer(nn.Linear(2, 2), "adam2", lr=0.1, weight_decay=0.0)

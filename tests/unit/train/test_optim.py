"""Optimisers and the learning-rate schedule."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from labelless.errors import ConfigError
from labelless.train.optim import LARS, build_optimizer, parameter_groups, warmup_cosine


def test_warmup_cosine_shape():
    total, warm = 100, 10
    values = [warmup_cosine(s, total, warm) for s in range(total + 1)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0)
    assert values[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert values[100] == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(100, total, warm, min_ratio=0.1) == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))


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

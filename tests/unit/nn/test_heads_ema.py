"""Heads described as data, and the EMA target."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from labelless.errors import ConfigError
from labelless.nn.ema import EMA, cosine_momentum
from labelless.nn.heads import mlp


def test_mlp_layout():
    head = mlp([8, 16, 4], norm="bn")
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head[0].bias is None and head[3].bias is not None
    assert head(torch.randn(5, 8)).shape == (5, 4)
    last = mlp([8, 4], norm="bn", last_norm=True)
    assert isinstance(last[1], nn.BatchNorm1d) and not last[1].affine


def test_mlp_rejects_bad_spec():
    with pytest.raises(ConfigError, match="at least an input and an output"):
        mlp([8])
    with pytest.raises(ConfigError, match="unknown head norm"):
        mlp([8, 4], norm="group")


def test_ema_update_is_the_convex_combination():
    online = nn.Linear(3, 2)
    ema = EMA(online)
    before = ema.target.weight.clone()
    with torch.no_grad():
        online.weight.add_(1.0)
    ema.update(online, momentum=0.9)
    assert torch.allclose(ema.target.weight, 0.9 * before + 0.1 * online.weight)
    assert not any(p.requires_grad for p in ema.target.parameters())


def test_ema_copies_buffers():
    online = nn.BatchNorm1d(3)
    ema = EMA(online)
    online.train()
    online(torch.randn(10, 3) + 5)
    ema.update(online, 0.99)
    assert torch.equal(ema.target.running_mean, online.running_mean)


def test_cosine_momentum_schedule():
    assert cosine_momentum(0.0, 0.99) == pytest.approx(0.99)
    assert cosine_momentum(1.0, 0.99) == pytest.approx(1.0)
    assert cosine_momentum(0.5, 0.99) == pytest.approx(
        0.99 + 0.01 * (1 - math.cos(math.pi / 2)) / 2
    )


@pytest.mark.parametrize(
    ("schedule", "momentum", "expected"),
    [
        ("constant", 0.9, [0.9, 0.9, 0.9]),
        ("cosine", (0.9, 1.0), [0.9, 0.95, 1.0]),
        ("linear", (0.9, 1.0), [0.9, 0.95, 1.0]),
    ],
)
def test_ema_owns_its_momentum_schedule(schedule, momentum, expected):
    online = nn.Linear(3, 2)
    ema = EMA(online, momentum, schedule=schedule)
    assert ema.current_momentum == pytest.approx(expected[0])
    for progress, value in zip((0.0, 0.5, 1.0), expected, strict=True):
        before = ema.target.weight.clone()
        with torch.no_grad():
            online.weight.add_(1.0)
        assert ema.step(online, progress) == pytest.approx(value)
        assert ema.current_momentum == pytest.approx(value)
        assert torch.allclose(ema.target.weight, value * before + (1 - value) * online.weight)
    assert EMA(online, (0.9, 1.0), "cosine").momentum_at(0.25) == pytest.approx(
        cosine_momentum(0.25, 0.9, 1.0)
    )


def test_ema_warmup_counts_its_updates_in_the_state_dict():
    """min(m, (1 + n) / (10 + n)) after n updates; the count survives a checkpoint."""
    online = nn.Linear(3, 2)
    ema = EMA(online, 0.999, schedule="warmup")
    used = [ema.step(online, progress=0.0) for _ in range(3)]
    assert used == pytest.approx([1 / 10, 2 / 11, 3 / 12])
    restored = EMA(online, 0.999, schedule="warmup")
    restored.load_state_dict(ema.state_dict())
    assert int(restored.updates) == 3 and restored.step(online, 0.0) == pytest.approx(4 / 13)
    late = EMA(online, 0.5, schedule="warmup")
    late.updates.fill_(100)
    assert late.step(online, 0.0) == pytest.approx(0.5)
    assert "updates" not in EMA(online, 0.9).state_dict()  # other schedules keep no count


def test_ema_rejects_an_unknown_schedule_or_momentum():
    with pytest.raises(ConfigError, match="schedule must be one of"):
        EMA(nn.Linear(2, 2), 0.9, schedule="step")
    with pytest.raises(ConfigError, match="momentum must be"):
        EMA(nn.Linear(2, 2), (0.9, 0.95, 1.0), schedule="cosine")

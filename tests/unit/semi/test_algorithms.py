"""Every registered algorithm on tiny tensors: the output contract, Mean Teacher's gradient."""

from __future__ import annotations

import pytest
import torch

from labelless.errors import ConfigError
from labelless.semi.algorithms import ALGORITHMS, create_algorithm
from labelless.semi.state import SampleState

from .conftest import TinyEncoder

KEYS = {"loss", "sup_loss", "unsup_loss"}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_contract_and_backward(name, tiny_batches):
    state = SampleState(12, torch.arange(4, 12))
    algorithm = create_algorithm(name, TinyEncoder(), 3, state)
    views = len(algorithm.unlabelled_views)
    labelled, unlabelled = tiny_batches(batch=4, mu=2, classes=3, num_views=max(views, 1))
    unlabelled["views"] = unlabelled["views"][:views]
    out = algorithm(labelled, unlabelled, 0.5)
    assert set(out) >= KEYS
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    grads = [p.grad for p in algorithm.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    if views:
        assert 0.0 <= float(out["mask_ratio"]) <= 1.0
    torch.optim.SGD(algorithm.model.parameters(), lr=0.1).step()
    before = [p.clone() for p in algorithm.ema_model.parameters()]
    algorithm.on_step_end(0.5)
    assert any(
        not torch.equal(b, p) for b, p in zip(before, algorithm.ema_model.parameters(), strict=True)
    )


def test_mean_teacher_consistency_has_gradient_wrt_student(tiny_batches):
    """The consistency term must move the student: the gradient of the total loss with the
    consistency weight on differs from the one with it off (a student forward under no_grad,
    a known bug elsewhere, would make them equal)."""
    labelled, unlabelled = tiny_batches(batch=4, mu=2, classes=3, num_views=2)
    state = SampleState(12, torch.arange(4, 12))
    algorithm = create_algorithm("mean_teacher", TinyEncoder(), 3, state, unsup_weight=50.0)
    for param in algorithm.ema_model.parameters():  # a teacher that differs from the student
        param.data.add_(0.5 * torch.randn_like(param))
    params = list(algorithm.model.parameters())

    def gradient(weight: float):
        algorithm.unsup_weight = weight
        out = algorithm(labelled, unlabelled, 1.0)
        return torch.autograd.grad(out["loss"], params), out

    with_term, out = gradient(50.0)
    without, _ = gradient(0.0)
    assert out["unsup_loss"] > 0
    difference = sum(float((a - b).abs().sum()) for a, b in zip(with_term, without, strict=True))
    assert difference > 1e-6
    assert all(not p.requires_grad for p in algorithm.ema_model.parameters())


def test_freematch_and_softmatch_statistics_move_from_their_start(tiny_batches):
    labelled, unlabelled = tiny_batches()
    for name, buffer in (("freematch", "global_threshold"), ("softmatch", "confidence_mean")):
        algorithm = create_algorithm(
            name, TinyEncoder(), 3, SampleState(12, torch.arange(4, 12)), momentum=0.5
        )
        start = getattr(algorithm, buffer).clone()
        algorithm(labelled, unlabelled, 0.0)
        assert not torch.equal(start, getattr(algorithm, buffer))


def test_unknown_algorithm_and_option_are_config_errors():
    state = SampleState(4)
    with pytest.raises(ConfigError, match="choose one of"):
        create_algorithm("nope", TinyEncoder(), 3, state)
    with pytest.raises(ConfigError, match="invalid options"):
        create_algorithm("fixmatch", TinyEncoder(), 3, state, bogus=1)

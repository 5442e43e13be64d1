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


TARGET_VIEW_ALGORITHMS = sorted(name for name, cls in ALGORITHMS.items() if cls.target_views)


def test_weak_view_is_a_target_of_the_fixmatch_family():
    assert {"fixmatch", "flexmatch", "freematch", "softmatch", "iomatch"} <= set(
        TARGET_VIEW_ALGORITHMS
    )
    assert "dac" not in TARGET_VIEW_ALGORITHMS  # DivCon's diversity loss trains on the weak view


@pytest.mark.parametrize("name", TARGET_VIEW_ALGORITHMS)
def test_separate_target_forward_keeps_loss_and_gradient(name, tiny_batches):
    """Without BatchNorm the grad-free forward of the weak view changes nothing: the same loss
    and the same gradient as one concatenated forward (the paper's form)."""
    labelled, unlabelled = tiny_batches(batch=4, mu=2, classes=3, num_views=2)
    results = []
    for separate in (True, False):
        torch.manual_seed(0)
        state = SampleState(12, torch.arange(4, 12))
        algorithm = create_algorithm(
            name, TinyEncoder(), 3, state, separate_targets=separate, threshold=0.3
        )
        out = algorithm(labelled, unlabelled, 0.5)
        params = list(algorithm.model.parameters())
        grads = torch.autograd.grad(out["loss"], params, allow_unused=True)
        results.append((out["loss"].detach(), grads))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


def test_forward_all_target_views_carry_no_graph_and_own_batchnorm_batch(tiny_batches):
    labelled, unlabelled = tiny_batches(batch=4, mu=2, classes=3, num_views=2)
    encoder = TinyEncoder()
    encoder.net.append(torch.nn.BatchNorm1d(8))
    algorithm = create_algorithm("fixmatch", encoder, 3, SampleState(12, torch.arange(4, 12)))
    logits_l, logits_w, logits_s = algorithm.forward_all(labelled, unlabelled)
    assert logits_l.requires_grad and logits_s.requires_grad and not logits_w.requires_grad
    # Train-mode BatchNorm: the trained views form one batch, the weak view its own.
    trained = algorithm.model(torch.cat([labelled["views"][0], unlabelled["views"][1]]))
    torch.testing.assert_close(torch.cat([logits_l, logits_s]), trained)
    torch.testing.assert_close(logits_w, algorithm.model(unlabelled["views"][0]))
    algorithm.separate_targets = False
    _, logits_w, _ = algorithm.forward_all(labelled, unlabelled)
    assert logits_w.requires_grad

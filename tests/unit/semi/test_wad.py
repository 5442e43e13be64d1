"""WAD (Du et al. 2023) against a step-by-step re-derivation in plain torch.

The paper's text was not reachable from here (only its abstract); the formulas re-derived below
are those of the authors' release (RUC-DWBI-ML/research, WAD-master):

- PMI score (``evals/eval.py``, ``get_scores``): ``s_k(x) = max_{x' labelled, y(x') = k}
  <z(x), z(x')>`` with ``z`` the L2-normalised teacher embedding;
- weight and pseudo-label (``knowledge_generation``): ``w = s_(1) (1 - s_(2) / s_(1))``,
  ``y_hat = argmax_k s_k``;
- loss (``SSL/train/train.py``, ``backbone_classifier``): ``CE_l + mean_u w_u CE(f(x_u), y_hat)``;
- rounds (``distillation_main.py``): after round ``r`` the ``alpha (1 - r / split) ** 2``
  fraction of the remaining unlabelled samples with the lowest student loss against their
  pseudo-label joins the labelled set with that label.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labelless.errors import ConfigError
from labelless.semi.algorithms import create_algorithm
from labelless.semi.algorithms.wad import WAD, pmi_scores, pmi_weights, polynomial_decay
from labelless.semi.state import SampleState

from .conftest import TinyEncoder

CLASSES = 3


def _algorithm(**options):
    torch.manual_seed(0)
    state = SampleState(12, torch.arange(4, 12))
    return create_algorithm("wad", TinyEncoder(), CLASSES, state, **options)


def _reference(algorithm, labelled, unlabelled, teacher):
    """Weights, pseudo-labels and losses computed one formula at a time."""
    z_l = teacher(labelled["views"][0])
    z_l = z_l / z_l.norm(dim=1, keepdim=True)
    z_u = teacher(unlabelled["views"][0])
    z_u = z_u / z_u.norm(dim=1, keepdim=True)
    scores = torch.full((len(z_u), CLASSES), -1.0)
    for k in range(CLASSES):  # s_k: the largest cosine with a labelled sample of class k
        members = labelled["label"] == k
        if members.any():
            scores[:, k] = (z_u @ z_l[members].T).max(dim=1).values
    ordered = scores.sort(dim=1, descending=True).values
    weights = ordered[:, 0] * (1 - ordered[:, 1] / ordered[:, 0])
    pseudo = scores.argmax(dim=1)
    model = algorithm.model
    logits_l = model(labelled["views"][0])
    logits_u = model(unlabelled["views"][0])
    sup = -F.log_softmax(logits_l, 1).gather(1, labelled["label"][:, None]).mean()
    per_sample = -F.log_softmax(logits_u, 1).gather(1, pseudo[:, None]).squeeze(1)
    unsup = (weights * per_sample).mean()
    return scores, weights, pseudo, sup, unsup, per_sample


def test_weights_pseudo_labels_and_losses_match_the_equations(tiny_batches):
    algorithm = _algorithm()
    labelled, unlabelled = tiny_batches(batch=4, mu=2, classes=CLASSES, num_views=1)
    with torch.no_grad():
        expected = _reference(algorithm, labelled, unlabelled, algorithm.frozen_teacher)
    _, weights, pseudo, sup, unsup, per_sample = expected
    out = algorithm(labelled, unlabelled, 0.0)
    assert torch.allclose(out["sup_loss"], sup, atol=1e-6)
    assert torch.allclose(out["unsup_loss"], unsup, atol=1e-6)
    assert torch.allclose(out["loss"], sup + unsup, atol=1e-6)
    assert torch.equal(out["pseudo_labels"], pseudo)
    assert torch.allclose(out["mask"], weights.clamp(0, 1), atol=1e-6)
    state = algorithm.state
    assert torch.equal(state["wad_pseudo"][unlabelled["index"]], pseudo)
    assert torch.allclose(state["wad_student_loss"][unlabelled["index"]], per_sample, atol=1e-6)
    assert torch.equal(state["wad_bank_label"][labelled["index"]], labelled["label"])
    assert (state["wad_bank_label"][unlabelled["index"]] == -1).all()


def test_pmi_functions_on_hand_numbers():
    embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    scores = pmi_scores(embeddings, bank, torch.tensor([0, 1, 1]), 3)
    # sample 0: class 0 -> 1.0; class 1 -> max(0.0, 0.8) = 0.8; class 2 empty -> -1
    # sample 1: class 0 -> 0.6; class 1 -> max(0.8, 0.96) = 0.96
    assert torch.allclose(scores, torch.tensor([[1.0, 0.8, -1.0], [0.6, 0.96, -1.0]]))
    weights, pseudo = pmi_weights(scores)
    assert torch.allclose(weights, torch.tensor([0.2, 0.36]))
    assert torch.equal(pseudo, torch.tensor([0, 1]))
    assert polynomial_decay(1, 0.1, 5) == pytest.approx(0.1 * 0.8**2)
    assert polynomial_decay(7, 0.1, 5) == 0.0


class Identity(nn.Module):
    embed_dim = 3

    def forward(self, x):
        return x.flatten(1)


def test_unseen_class_gets_lower_weight():
    """Two known classes along e1 and e2, an unseen one along e3: the unseen samples are about
    as close to both known classes, so their gap, WAD's weight, is far smaller."""
    generator = torch.Generator().manual_seed(0)
    state = SampleState(16, torch.arange(4, 16))
    algorithm = create_algorithm("wad", Identity(), 2, state)
    eye = torch.eye(3)
    noise = lambda n: 0.05 * torch.randn(n, 3, generator=generator)  # noqa: E731
    labelled = {
        "views": [eye[[0, 0, 1, 1]] + noise(4)],
        "label": torch.tensor([0, 0, 1, 1]),
        "index": torch.arange(4),
    }
    truth = torch.tensor([0] * 4 + [1] * 4 + [2] * 4)
    unlabelled = {"views": [eye[truth] + noise(12)], "label": truth, "index": torch.arange(4, 16)}
    out = algorithm(labelled, unlabelled, 0.0)
    assert (state["wad_pseudo"][4:] >= 0).all()  # written for every unlabelled sample
    mask = out["mask"]
    assert mask[truth == 2].max() < 0.2 < mask[truth < 2].min()
    assert torch.equal(out["pseudo_labels"][truth < 2], truth[truth < 2])


def test_state_rounds_and_ema_over_several_steps(tiny_batches):
    algorithm = _algorithm(rounds=5, alpha=0.5)
    labelled, unlabelled = tiny_batches(batch=4, mu=2, classes=CLASSES, num_views=1)
    optimiser = torch.optim.SGD(algorithm.model.parameters(), lr=0.1)
    state = algorithm.state
    ema_before = [p.clone() for p in algorithm.ema_model.parameters()]
    for step in range(2):
        out = algorithm(labelled, unlabelled, step / 10)
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
        algorithm.on_step_end(step / 10)
    assert int(algorithm.rounds_done) == 0 and (state["wad_bank_label"][4:] == -1).all()
    assert any(
        not torch.equal(a, b)
        for a, b in zip(ema_before, algorithm.ema_model.parameters(), strict=True)
    )
    losses = state["wad_student_loss"].clone()
    pseudo = state["wad_pseudo"].clone()
    algorithm.on_step_end(1 / 6 + 1e-6)  # end of the first of rounds + 1 phases
    assert int(algorithm.rounds_done) == 1
    count = int(0.5 * (1 - 1 / 5) ** 2 * 8)  # 2 of the 8 remaining unlabelled samples
    chosen = losses[4:].topk(count, largest=False).indices + 4
    promoted = (state["wad_bank_label"] >= 0).nonzero().squeeze(1)
    assert torch.equal(promoted[4:].sort().values, chosen.sort().values)
    assert torch.equal(state["wad_bank_label"][chosen], pseudo[chosen])
    # promoted samples are trained on their label with weight 1 and join the reference set
    out = algorithm(labelled, unlabelled, 0.2)
    rows = torch.isin(unlabelled["index"], chosen)
    assert torch.allclose(out["mask"][rows], torch.ones(count))
    assert torch.equal(
        out["pseudo_labels"][rows], state["wad_bank_label"][unlabelled["index"][rows]]
    )
    algorithm.on_step_end(1.0)  # the remaining rounds; the last promotes nothing
    assert int(algorithm.rounds_done) == 5
    reloaded = _algorithm(rounds=5, alpha=0.5)
    reloaded.load_state_dict(algorithm.state_dict())
    assert torch.equal(reloaded.state["wad_bank_label"], state["wad_bank_label"])
    assert int(reloaded.rounds_done) == 5


def test_gradient_reaches_the_student_not_the_teacher(tiny_batches):
    algorithm = _algorithm()
    labelled, unlabelled = tiny_batches(batch=4, mu=2, classes=CLASSES, num_views=1)
    params = list(algorithm.model.parameters())
    with_term = torch.autograd.grad(algorithm(labelled, unlabelled, 0.5)["loss"], params)
    algorithm.unsup_weight = 0.0
    without = torch.autograd.grad(algorithm(labelled, unlabelled, 0.5)["loss"], params)
    assert sum(float((a - b).abs().sum()) for a, b in zip(with_term, without, strict=True)) > 1e-6
    assert all(not p.requires_grad for p in algorithm.frozen_teacher.parameters())


def test_ema_teacher_and_outlier_score(tiny_batches):
    algorithm = _algorithm(teacher="ema")
    assert algorithm.frozen_teacher is None
    labelled, unlabelled = tiny_batches(batch=4, mu=2, classes=CLASSES, num_views=1)
    for param in algorithm.ema_model.parameters():  # a teacher that differs from the student
        param.data.add_(0.5)
    with torch.no_grad():
        expected = _reference(algorithm, labelled, unlabelled, algorithm.ema_model.backbone)
    out = algorithm(labelled, unlabelled, 0.0)
    assert torch.allclose(out["unsup_loss"], expected[4], atol=1e-6)
    embeddings = torch.randn(5, 8)
    probs = F.softmax(algorithm.ema_model.head(embeddings), dim=-1).sort(dim=-1).values
    score = algorithm.outlier_score_from_embeddings(embeddings, algorithm.ema_model)
    assert torch.allclose(score, 1 - (probs[:, -1] - probs[:, -2]), atol=1e-6)


def test_options_are_checked():
    with pytest.raises(ConfigError, match="no --init"):
        WAD.check_run({}, pretrained=False)  # a frozen random teacher is refused
    WAD.check_run({}, pretrained=True)
    WAD.check_run({"teacher": "ema"}, pretrained=False)
    with pytest.raises(ConfigError):
        _algorithm(teacher="clip")
    with pytest.raises(ConfigError):
        _algorithm(alpha=2.0)

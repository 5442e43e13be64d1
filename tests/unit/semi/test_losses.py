"""Each semi-supervised loss / threshold against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from labelless.semi import losses


def test_confidence_mask_global_and_per_class_threshold():
    probs = torch.tensor([[0.96, 0.04], [0.6, 0.4], [0.3, 0.7]])
    mask, pseudo, confidence = losses.confidence_mask(probs, 0.95)
    assert mask.tolist() == [1.0, 0.0, 0.0]
    assert pseudo.tolist() == [0, 0, 1]
    assert confidence.tolist() == pytest.approx([0.96, 0.6, 0.7])
    # per class: class 0 needs 0.5, class 1 needs 0.8 -> the third sample (0.7 for class 1) fails
    mask, _, _ = losses.confidence_mask(probs, torch.tensor([0.5, 0.8]))
    assert mask.tolist() == [1.0, 1.0, 0.0]


def test_fixmatch_masked_consistency_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([0, 0])
    mask = torch.tensor([1.0, 0.0])
    expected = -math.log(math.exp(2) / (math.exp(2) + 1)) / 2  # mean over the whole batch
    assert losses.masked_consistency(logits, targets, mask).item() == pytest.approx(expected)


def test_soft_cross_entropy_matches_hard_for_one_hot():
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    hard = losses.cross_entropy(logits, torch.tensor([1]))
    soft = losses.cross_entropy(logits, torch.tensor([[0.0, 1.0, 0.0]]))
    assert soft.item() == pytest.approx(hard.item())


def test_flexmatch_normalised_thresholds_by_hand():
    status = torch.tensor([0, 0, 1, -1, -1, -1, -1, -1])  # sigma = [2, 1, 0], 5 unused
    warm = losses.flexmatch_thresholds(status, 3, 0.9, warmup=True)
    # beta = sigma / max(2, 5) = [0.4, 0.2, 0]; M(x) = x / (2 - x)
    assert warm.tolist() == pytest.approx([0.9 * 0.4 / 1.6, 0.9 * 0.2 / 1.8, 0.0])
    plain = losses.flexmatch_thresholds(status, 3, 0.9, warmup=False)
    # beta = sigma / 2 = [1, 0.5, 0]
    assert plain.tolist() == pytest.approx([0.9, 0.9 * 0.5 / 1.5, 0.0])


def test_freematch_thresholds_and_ema():
    thresholds = losses.freematch_thresholds(torch.tensor(0.8), torch.tensor([0.2, 0.5, 0.3]))
    assert thresholds.tolist() == pytest.approx([0.32, 0.8, 0.48])
    value = torch.tensor(0.1)
    losses.ema_(value, torch.tensor(0.9), 0.75)
    assert value.item() == pytest.approx(0.75 * 0.1 + 0.25 * 0.9)


def test_freematch_fairness_by_hand():
    probs = torch.tensor([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    mask = torch.tensor([1.0, 1.0, 0.0])
    # masked: mean probs [0.7, 0.3], histogram of argmax [1, 0] -> ratio [0.7, 0] -> [1, 0]
    value = losses.freematch_fairness(
        probs, mask, torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5])
    )
    # target [0.5, 0.5]: USB's entropy_loss / eq. 11 is 0.5 log 1 + 0.5 log 1e-12 (negative)
    assert value.item() == pytest.approx(0.5 * math.log(1e-12), rel=1e-4)
    cross_entropy = losses.freematch_fairness(
        probs, mask, torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5]), cross_entropy=True
    )
    assert cross_entropy.item() == pytest.approx(-value.item())
    assert losses.freematch_fairness(probs, torch.zeros(3), torch.ones(2), torch.ones(2)) == 0


def test_softmatch_truncated_gaussian_weights_by_hand():
    weights = losses.softmatch_weights(torch.tensor([0.9, 0.5]), 0.7, 0.01, max_weight=1.0)
    assert weights.tolist() == pytest.approx([1.0, math.exp(-(0.2**2) / 0.02)])


def test_uniform_alignment_by_hand():
    aligned = losses.uniform_alignment(torch.tensor([[0.5, 0.5]]), torch.tensor([0.8, 0.2]))
    scaled = [0.5 * (0.5 + 1e-6) / (0.8 + 1e-6), 0.5 * (0.5 + 1e-6) / (0.2 + 1e-6)]
    assert aligned.tolist()[0] == pytest.approx([v / sum(scaled) for v in scaled], rel=1e-6)
    assert aligned.tolist()[0] == pytest.approx([0.2, 0.8], abs=1e-5)


def test_mixmatch_sharpening_by_hand():
    sharp = losses.sharpen(torch.tensor([[0.6, 0.4]]), 0.5)
    assert sharp.tolist()[0] == pytest.approx([0.36 / 0.52, 0.16 / 0.52])


def test_mixup_keeps_each_row_closest_to_itself_and_is_reproducible():
    inputs = torch.eye(4)
    targets = torch.eye(4)
    first = losses.mixup(inputs, targets, 0.75, torch.Generator().manual_seed(3))
    again = losses.mixup(inputs, targets, 0.75, torch.Generator().manual_seed(3))
    mixed, mixed_targets, lam = first
    assert 0.5 <= lam <= 1.0
    assert torch.equal(mixed, again[0])
    assert torch.allclose(mixed, mixed_targets)
    assert torch.allclose(mixed.sum(1), torch.ones(4))
    assert (mixed.diagonal() >= lam - 1e-6).all()


def test_mean_teacher_consistency_and_rampups():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # softmax [0.75, 0.25]
    assert losses.softmax_mse(student, teacher).item() == pytest.approx(0.25**2)
    assert losses.sigmoid_rampup(0.0, 0.5) == pytest.approx(math.exp(-5))
    assert losses.sigmoid_rampup(0.5, 0.5) == 1.0
    assert losses.linear_rampup(0.1, 0.4) == pytest.approx(0.25)


def test_iomatch_open_set_targets_and_one_vs_all_by_hand():
    targets = losses.open_set_targets(torch.tensor([[0.7, 0.3]]), torch.tensor([[0.9, 0.2]]))
    assert targets.tolist()[0] == pytest.approx([0.63, 0.06, 0.07 + 0.24])
    # binary logits [B, 2, K]: class 0 inlier prob 0.9 (positive), class 1 "not" prob 0.6
    o0, n1 = 0.9, 0.6
    logits = torch.tensor([[[math.log(1 - o0), math.log(n1)], [math.log(o0), math.log(1 - n1)]]])
    value = losses.one_vs_all_loss(logits, torch.tensor([0]))
    assert value.item() == pytest.approx(-math.log(o0) - math.log(n1), rel=1e-5)


def test_head_disagreement_is_mutual_information():
    agree = torch.tensor([[[0.5, 0.5]], [[0.5, 0.5]]])
    split = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert losses.head_disagreement(agree).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.head_disagreement(split).item() == pytest.approx(math.log(2), abs=1e-6)


def test_dac_head_agreement_and_pairwise_mutual_information_by_hand():
    # two opposite one-hot heads: |diff| 1 on 2 of the 4 ordered pairs, both classes -> mean 0.5
    split = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # [B=1, H=2, C=2]
    assert losses.head_agreement(split).item() == pytest.approx(math.exp(-0.5))
    assert losses.head_agreement(split, 0.5).item() == pytest.approx(math.exp(-1.0))
    assert losses.head_agreement(split[:, :1].repeat(1, 2, 1)).item() == pytest.approx(1.0)
    # two identical heads, [a, 1 - a] then [1 - a, a]: joint diagonal (a^2 + (1 - a)^2) / 2
    a = 0.9
    same = torch.tensor([[[a, 1 - a]] * 2, [[1 - a, a]] * 2])  # [B=2, H=2, C=2]
    diagonal, off = (a**2 + (1 - a) ** 2) / 2, a * (1 - a)
    expected = 2 * diagonal * math.log(diagonal / 0.25) + 2 * off * math.log(off / 0.25)
    assert losses.pairwise_mutual_information(same).item() == pytest.approx(expected, rel=1e-5)
    constant = same.clone()
    constant[:, 1] = 0.5  # a head that ignores the input shares no information
    assert losses.pairwise_mutual_information(constant).item() == pytest.approx(0.0, abs=1e-6)

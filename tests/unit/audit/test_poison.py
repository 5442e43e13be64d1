"""Poisoned copies and attack success: which samples get the trigger, that the copy differs
exactly there, the rates against a hand count, and hand-built encoders whose triggered images
land in the target cluster (kNN and linear probe)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labelless.audit.poison import (
    attack_success,
    poison_dataset,
    poison_indices,
    poison_splits,
    poison_summary,
    target_rates,
)
from labelless.audit.triggers import Trigger, ctrl_frequencies
from labelless.data import Dataset, DataSplits
from labelless.encoders import Preprocessing
from labelless.errors import ConfigError, DataError
from labelless.evaluate import linear_probe

PIXELS = Preprocessing(8, [0.5], [1.0], "encoder", "encoder")  # z = flatten(x - 0.5)
PATCH = Trigger.patch(size=3)  # a checkerboard in the bottom-right 3x3 corner


def test_poison_indices_are_a_fraction_of_the_whole_set_all_of_the_target_class(digits):
    labels = digits.train.labels
    for fraction in (0.01, 0.05, 0.09):
        chosen = poison_indices(labels, 3, fraction, seed=0)
        assert len(chosen) == round(fraction * len(labels)) == len(np.unique(chosen))
        assert (labels[chosen] == 3).all() and (np.diff(chosen) > 0).all()
    assert np.array_equal(poison_indices(labels, 3, 0.05, 1), poison_indices(labels, 3, 0.05, 1))
    assert not np.array_equal(
        poison_indices(labels, 3, 0.05, 1), poison_indices(labels, 3, 0.05, 2)
    )


def test_eligible_indices_make_the_pool(digits):
    labels = digits.train.labels
    pool = np.arange(0, len(labels), 2)  # e.g. the unlabelled part of a semi-supervised run
    chosen = poison_indices(labels, 5, 0.02, seed=0, eligible=pool)
    assert len(chosen) == round(0.02 * len(pool))
    assert np.isin(chosen, pool).all() and (labels[chosen] == 5).all()


def test_poison_index_errors_name_the_fix(digits):
    labels = digits.train.labels  # 1437 samples, 145 of class 5
    with pytest.raises(DataError, match=r"holds 145: lower the fraction to at most 0\.1009"):
        poison_indices(labels, 5, 0.2)
    with pytest.raises(ConfigError, match="rounds to no sample: raise it to at least"):
        poison_indices(labels, 5, 0.0001)
    for fraction in (0, 1.5, True):
        with pytest.raises(ConfigError, match=r"in \(0, 1\]"):
            poison_indices(labels, 5, fraction)


@pytest.mark.parametrize(
    "trigger",
    [PATCH, Trigger.ctrl(window=8, frequencies=ctrl_frequencies(8))],
    ids=["patch", "ctrl"],
)
def test_the_poisoned_copy_differs_exactly_at_the_indices(digits, trigger):
    before = digits.train.samples.copy()
    poisoned, indices = poison_splits(digits, trigger, target_class=7, fraction=0.05, seed=0)
    train = poisoned.train
    changed = np.flatnonzero((train.samples != before).reshape(len(before), -1).any(axis=1))
    assert np.array_equal(changed, indices) and len(indices) == round(0.05 * len(before))
    assert np.array_equal(train.samples[indices], trigger.apply_uint8(before[indices]))
    assert np.array_equal(train.labels, digits.train.labels)
    assert poisoned.test is digits.test  # the test split is untouched
    assert np.array_equal(digits.train.samples, before)  # the original is not modified
    assert train.meta["mean"] == digits.train.meta["mean"]  # both runs normalise alike
    assert train.meta["poison"] == {"trigger": trigger.to_dict(), "indices": indices.tolist()}
    summary = poison_summary(digits.train, train, trigger)
    assert summary["changed_samples"] == len(indices)
    assert 5 < summary["psnr_db"]["min"] <= summary["psnr_db"]["mean"] < 40


def test_poison_dataset_needs_images_and_valid_indices(digits):
    with pytest.raises(DataError, match=r"must lie in 0\.\.1436"):
        poison_dataset(digits.train, PATCH, np.array([1437]))
    table = Dataset(np.zeros((4, 3), np.float32), modality="tabular")
    with pytest.raises(DataError, match="added to images"):
        poison_dataset(table, PATCH, np.array([0]))


def test_target_rates_against_a_hand_count():
    labels = np.array([0, 0, 1, 1, 2, 2, -1])
    clean = np.array([0, 2, 1, 1, 2, 0, 0])
    triggered = np.array([0, 0, 0, 1, 2, 0, 0])
    rates = target_rates(labels, clean, triggered, target_class=0)
    assert rates == {
        "clean_accuracy": 4 / 6,
        "triggered_accuracy": 4 / 6,
        "attack_success": 2 / 4,  # labels 1, 1, 2, 2 -> predicted 0, 1, 2, 0
        "base_rate": 1 / 4,  # clean: 1, 1, 2, 0
    }


def _clusters(per_class: int, seed: int, means: np.ndarray) -> Dataset:
    """``per_class`` noisy uint8 copies (std 0.01) of each class mean ``[K, 1, 8, 8]``."""
    labels = np.repeat(np.arange(len(means)), per_class)
    noise = np.random.default_rng(seed).normal(0.0, 0.01, (len(labels), 1, 8, 8))
    pixels = np.clip(means[labels] + noise, 0, 1)
    return Dataset(np.round(pixels * 255).astype(np.uint8), labels, name=f"clusters-{seed}")


def _board() -> np.ndarray:
    grid = np.arange(3)
    return (np.add.outer(grid, grid) % 2 == 0).astype(float)  # the patch trigger's pattern


def test_attack_success_counts_triggered_images_that_land_in_the_target_cluster():
    """Identity encoder on centred pixels; the target class (2) is grey with the trigger's
    checkerboard. Class 0 differs from grey by a faint sign pattern (norm 0.2, the patch's is
    1.5): triggered, it is nearer class 2. Class 1's pattern is strong (norm 1.8): triggered,
    it stays. So kNN's attack success is exactly class 0's share of the non-target test
    images, 0.5, and clean images are never sent to the target."""
    rng = np.random.default_rng(0)
    means = np.full((3, 1, 8, 8), 0.5)
    means[0, 0, :4, :4] += 0.05 * rng.choice([-1, 1], (4, 4))
    means[1, 0, :4, 4:] += 0.45 * rng.choice([-1, 1], (4, 4))
    means[2, 0, 5:, 5:] = _board()
    train, test = _clusters(30, 1, means), _clusters(10, 2, means)
    result = attack_success(nn.Flatten(), PIXELS, train, test, PATCH, target_class=2, k=5)
    assert result["knn"] == {
        "clean_accuracy": 1.0,
        "triggered_accuracy": 2 / 3,  # class 0 moved to 2; classes 1 and 2 stay
        "attack_success": 0.5,
        "base_rate": 0.0,
    }
    assert (result["num_train"], result["num_test"], result["num_attacked"]) == (90, 30, 20)
    assert result["linear"]["base_rate"] == 0.0
    # the linear probe is evaluate.linear_probe's, fitted on the clean train embeddings
    z = {
        name: torch.from_numpy(d.samples).float().div(255).sub(0.5).flatten(1)
        for name, d in (("train", train), ("test", test))
    }
    reference = linear_probe(z["train"], train.labels, z["test"], test.labels, seed=0)
    assert result["linear"]["clean_accuracy"] == reference.accuracy
    assert result["linear"]["weight_decay"] == reference.weight_decay
    protocol = result["protocol"]
    assert (
        protocol["knn"] == {"k": 5, "temperature": 0.1} and protocol["trigger"] == PATCH.to_dict()
    )


def test_triggered_copies_of_target_images_fool_both_heads():
    """Classes 0 (dark) and 1 (light); the target class holds both shades with the trigger's
    checkerboard. A triggered image of class 0 or 1 IS a target-class image (up to noise):
    kNN and the linear probe send every one of them to the target."""
    means = np.stack([np.full((1, 8, 8), 0.3), np.full((1, 8, 8), 0.7)] * 2)
    means[2:, 0, 5:, 5:] = _board()
    train = _clusters(20, 1, means)
    train.labels = np.minimum(train.labels, 2)  # means 2 and 3 are both class 2
    test = _clusters(5, 2, means[:3])
    result = attack_success(nn.Flatten(), PIXELS, train, test, PATCH, target_class=2, k=5)
    for head in ("knn", "linear"):
        assert result[head]["attack_success"] == 1.0, head
        assert result[head]["base_rate"] == 0.0 and result[head]["clean_accuracy"] == 1.0


def test_attack_success_errors(digits):
    encoder = nn.Flatten()
    with pytest.raises(ConfigError, match=r"target class must be in 0\.\.9"):
        attack_success(encoder, PIXELS, digits.train, digits.test, PATCH, target_class=10)
    unlabelled = Dataset(digits.test.samples, None, name="no-labels")
    with pytest.raises(DataError, match="has no labels"):
        attack_success(encoder, PIXELS, digits.train, unlabelled, PATCH, target_class=0)
    only_target = Dataset(digits.test.samples[:3], np.zeros(3, np.int64))
    with pytest.raises(DataError, match="no labelled image outside class 0"):
        attack_success(encoder, PIXELS, digits.train, only_target, PATCH, target_class=0)


def test_poison_splits_needs_training_labels(digits):
    unlabelled = DataSplits(Dataset(digits.train.samples, None), digits.test)
    with pytest.raises(DataError, match="needs the training labels"):
        poison_splits(unlabelled, PATCH, 0, 0.01)

"""Linear probe: learns separable blobs and never looks at test labels to choose anything."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labelless.errors import DataError
from labelless.evaluate import linear_probe
from labelless.evaluate.linear import (
    LinearHead,
    fit_head,
    standardise,
    stratified_split,
    validation_curve,
)


def blobs(num_per_class: int, seed: int, num_classes: int = 3, dim: int = 16):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(123).normal(scale=3.0, size=(num_classes, dim))
    labels = np.repeat(np.arange(num_classes), num_per_class)
    return centers[labels] + rng.normal(size=(len(labels), dim)), labels


def test_linear_probe_separates_blobs_and_ignores_test_labels():
    train_z, train_y = blobs(100, seed=0)
    test_z, test_y = blobs(50, seed=1)
    result = linear_probe(train_z, train_y, test_z, test_y, epochs=50)
    assert result.accuracy > 0.95
    assert result.val_accuracy > 0.95
    assert result.weight_decay in result.protocol["weight_decays"]
    assert set(result.protocol["val_accuracies"]) == {
        repr(w) for w in result.protocol["weight_decays"]
    }
    assert result.protocol["num_classes"] == 3 and result.protocol["num_train"] == 300

    shuffled = np.random.default_rng(0).permutation(test_y)
    blind = linear_probe(train_z, train_y, test_z, shuffled, epochs=50)
    assert blind.weight_decay == result.weight_decay
    assert blind.val_accuracy == result.val_accuracy
    assert blind.protocol["val_accuracies"] == result.protocol["val_accuracies"]
    assert blind.protocol["val_losses"] == result.protocol["val_losses"]
    assert blind.accuracy < 0.6  # chance is 1/3: the refit model is the same, only the labels moved


def test_unlabelled_samples_are_dropped():
    train_z, train_y = blobs(40, seed=0)
    test_z, test_y = blobs(20, seed=1)
    train_y, test_y = train_y.copy(), test_y.copy()
    train_y[::4], test_y[::5] = -1, -1
    result = linear_probe(train_z, train_y, test_z, test_y, weight_decays=(1e-4,), epochs=30)
    assert result.protocol["num_train"] == 90 and result.protocol["num_test"] == 48
    assert result.accuracy > 0.95


def test_stratified_split_is_seeded_and_keeps_class_proportions():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    fit, val = stratified_split(labels, 0.2, seed=3)
    assert np.bincount(labels[val]).tolist() == [10, 6, 4]
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 100
    again, _ = stratified_split(labels, 0.2, seed=3)
    np.testing.assert_array_equal(fit, again)


def test_too_few_labels_raise():
    with pytest.raises(DataError, match="every label is -1"):
        linear_probe(np.ones((4, 2)), np.full(4, -1), np.ones((2, 2)), np.zeros(2))
    with pytest.raises(DataError, match="too few"):
        linear_probe(np.eye(2), np.array([0, 1]), np.eye(2), np.array([0, 1]))


def test_selection_reads_neither_test_features_nor_test_labels():
    """The weight decay and the validation curve come from train alone: another test set (other
    features, permuted labels, another size) changes only the final number."""
    train_z, train_y = blobs(60, seed=0, dim=40)
    train_z = train_z + np.random.default_rng(5).normal(scale=4.0, size=train_z.shape)  # overlap
    test_z, test_y = blobs(30, seed=1, dim=40)
    result = linear_probe(train_z, train_y, test_z, test_y, epochs=50)
    other_z, other_y = blobs(17, seed=9, dim=40)
    shuffled = np.random.default_rng(1).permutation(other_y)
    other = linear_probe(train_z, train_y, other_z, shuffled, epochs=50)
    assert len(set(result.protocol["val_accuracies"].values())) > 1  # the choice is not a tie
    assert other.weight_decay == result.weight_decay
    for key in ("val_accuracies", "val_losses", "iterations"):
        assert other.protocol[key] == result.protocol[key]
    assert result.protocol["num_test"] == 90 and other.protocol["num_test"] == 51


def test_the_curve_fitted_in_one_pass_matches_each_decay_fitted_alone():
    """``validation_curve`` fits the whole grid in the same passes; each decay's validation
    accuracy and loss are those of fitting that decay alone on the same split."""
    train_z, train_y = blobs(80, seed=0, dim=30)
    train_z = train_z + np.random.default_rng(5).normal(scale=4.0, size=train_z.shape)
    x, y = torch.as_tensor(train_z).float(), torch.as_tensor(train_y)
    decays = (0.0, 1e-3, 1e-2, 1e-1, 1.0)
    curve = validation_curve(x, y, decays, 3, epochs=100, val_fraction=0.25, seed=4)
    fit_index, val_index = stratified_split(train_y, 0.25, seed=4)
    fit_x, mean, std = standardise(x[fit_index])
    for decay in decays:
        head = LinearHead(mean, std, *fit_head(fit_x, y[fit_index], decay, 3, epochs=100))
        with torch.no_grad():
            logits = head.logits(x[val_index])
        accuracy = float((logits.argmax(dim=1) == y[val_index]).float().mean())
        assert curve["val_accuracies"][repr(decay)] == pytest.approx(accuracy, abs=1e-6)
        loss = float(F.cross_entropy(logits, y[val_index]))
        assert curve["val_losses"][repr(decay)] == pytest.approx(loss, rel=1e-4)
    best = max(
        decays, key=lambda d: (curve["val_accuracies"][repr(d)], -curve["val_losses"][repr(d)])
    )
    assert curve["chosen"] == best

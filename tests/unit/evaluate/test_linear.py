"""Linear probe: learns separable blobs and never looks at test labels to choose anything."""

from __future__ import annotations

import numpy as np
import pytest

from labelless.errors import DataError
from labelless.evaluate import linear_probe
from labelless.evaluate.linear import stratified_split


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

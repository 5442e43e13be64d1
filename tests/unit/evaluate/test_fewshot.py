"""Few-shot: stratified, seeded draws; mean and std over draws."""

from __future__ import annotations

import numpy as np
import pytest

from labelless.errors import ConfigError, DataError
from labelless.evaluate import draw_few_shot, few_shot


def test_draws_are_stratified_seeded_and_skip_unlabelled():
    labels = np.repeat([0, 1, 2], [20, 7, 12])
    labels[::5] = -1
    index = draw_few_shot(labels, shots=3, seed=4)
    assert np.bincount(labels[index]).tolist() == [3, 3, 3]
    assert (labels[index] >= 0).all() and len(np.unique(index)) == 9
    np.testing.assert_array_equal(index, draw_few_shot(labels, shots=3, seed=4))
    others = {tuple(draw_few_shot(labels, shots=3, seed=s)) for s in range(5)}
    assert len(others) > 1  # different seeds, different draws
    with pytest.raises(DataError, match=r"classes \[1\]"):
        draw_few_shot(labels, shots=6, seed=0)
    with pytest.raises(ConfigError):
        draw_few_shot(labels, shots=0, seed=0)


def blobs(num_per_class, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(7).normal(size=(3, 8)) * 4
    labels = np.repeat(np.arange(3), num_per_class)
    return centres[labels] + rng.normal(scale=scale, size=(len(labels), 8)), labels


@pytest.mark.parametrize("classifier", ["centroid", "logistic"])
def test_few_shot_on_separated_blobs(classifier):
    train_z, train_y = blobs(30, seed=0, scale=0.3)
    test_z, test_y = blobs(20, seed=1, scale=0.3)
    result = few_shot(
        train_z, train_y, test_z, test_y, shots=(1, 5), draws=3, classifier=classifier, epochs=30
    )
    for key in ("1_shot", "5_shot"):
        assert result[key]["mean"] == pytest.approx(1.0)
        assert result[key]["std"] == pytest.approx(0.0) and len(result[key]["accuracies"]) == 3
    assert result["protocol"]["seeds"] == [0, 1, 2]


def test_mean_and_std_are_over_draws():
    train_z, train_y = blobs(30, seed=0, scale=3.0)  # overlapping: draws differ
    test_z, test_y = blobs(30, seed=1, scale=3.0)
    result = few_shot(train_z, train_y, test_z, test_y, shots=(1,), draws=4)["1_shot"]
    values = np.asarray(result["accuracies"])
    assert result["mean"] == pytest.approx(values.mean()) and result["std"] == pytest.approx(
        values.std()
    )
    assert values.std() > 0
    again = few_shot(train_z, train_y, test_z, test_y, shots=(1,), draws=4)["1_shot"]
    assert again["accuracies"] == result["accuracies"]

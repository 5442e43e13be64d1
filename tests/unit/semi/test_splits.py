from __future__ import annotations

import numpy as np
import pytest

from labelless.errors import ConfigError, DataError
from labelless.semi.splits import split_labels

LABELS = np.repeat(np.arange(4), 25)


def test_labels_per_class_is_stratified_seeded_and_disjoint():
    split = split_labels(LABELS, per_class=3, seed=1)
    assert np.bincount(LABELS[split.labelled]).tolist() == [3, 3, 3, 3]
    assert len(np.intersect1d(split.labelled, split.unlabelled)) == 0
    assert len(split.labelled) + len(split.unlabelled) == len(LABELS)
    assert np.array_equal(split.labelled, split_labels(LABELS, per_class=3, seed=1).labelled)
    assert not np.array_equal(split.labelled, split_labels(LABELS, per_class=3, seed=2).labelled)
    assert split.num_classes == 4 and not split.open_set


def test_label_fraction_and_given_labels():
    split = split_labels(LABELS, fraction=0.2)
    assert np.bincount(LABELS[split.labelled]).tolist() == [5, 5, 5, 5]
    given = np.full(100, -1)
    given[[0, 30, 60, 90]] = [0, 1, 2, 3]
    split = split_labels(given)
    assert split.labelled.tolist() == [0, 30, 60, 90] and len(split.unlabelled) == 96


def test_open_set_split_keeps_unknown_classes_unlabelled():
    split = split_labels(LABELS, per_class=2, known_classes=3)
    assert split.open_set and split.num_classes == 3
    assert LABELS[split.labelled].max() == 2
    assert (LABELS[split.unlabelled] == 3).sum() == 25


def test_user_errors_name_the_fix():
    with pytest.raises(ConfigError, match="lower it"):
        split_labels(LABELS, per_class=30)
    with pytest.raises(ConfigError, match="not both"):
        split_labels(LABELS, per_class=1, fraction=0.1)
    with pytest.raises(DataError, match="no labels"):
        split_labels(np.full(10, -1))
    with pytest.raises(ConfigError, match="nothing to learn"):
        split_labels(LABELS, fraction=1.0)

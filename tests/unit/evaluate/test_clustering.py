"""k-means NMI / ARI: perfect clusterings score 1, chance about 0."""

from __future__ import annotations

import numpy as np
import pytest

from labelless.errors import ConfigError, DataError
from labelless.evaluate import cluster_scores, kmeans_clustering


def test_perfect_clustering_up_to_renaming_scores_one():
    labels = np.array([0, 0, 1, 1, 2, 2])
    renamed = np.array([5, 5, 3, 3, 4, 4])
    assert cluster_scores(renamed, labels) == pytest.approx({"nmi": 1.0, "ari": 1.0})


def test_ari_and_nmi_by_hand():
    # Labels {0,0,1,1}, clusters {0,1,0,1}: independent partitions. Contingency all ones:
    # ARI = (0 - (2*2)/6) / ((2+2)/2 - (2*2)/6) = -2/3 / (4/3) = -0.5; mutual information 0.
    scores = cluster_scores([0, 1, 0, 1], [0, 0, 1, 1])
    assert scores["ari"] == pytest.approx(-0.5)
    assert scores["nmi"] == pytest.approx(0.0, abs=1e-12)


def test_kmeans_recovers_separated_blobs():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 5
    labels = np.repeat(np.arange(4), 30)
    z = centres[labels] + rng.normal(scale=0.1, size=(120, 16))
    labels_with_unlabelled = labels.copy()
    labels_with_unlabelled[::10] = -1
    result = kmeans_clustering(z, labels_with_unlabelled, seed=0)
    assert result["nmi"] == pytest.approx(1.0) and result["ari"] == pytest.approx(1.0)
    assert result["num_clusters"] == 4


def test_clustering_errors():
    with pytest.raises(DataError, match="at least 2"):
        kmeans_clustering(np.ones((5, 2)), np.zeros(5))
    with pytest.raises(ConfigError, match="num_clusters"):
        kmeans_clustering(np.eye(3), [0, 1, 2], num_clusters=7)

"""MAP@R (Musgrave et al. 2020) on hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labelless.errors import DataError
from labelless.evaluate import map_at_r, retrieval_metrics


def angles(degrees):
    radians = np.deg2rad(np.asarray(degrees, dtype=float))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def test_map_at_r_by_hand():
    # Points on the unit circle; cosine order = angular distance order.
    # Class 0 at 0, 10, 100 degrees; class 1 at 40, 200 degrees.
    z = angles([0, 10, 100, 40, 200])
    y = np.array([0, 0, 0, 1, 1])
    # Query 0 (0 deg), R = 2: neighbours 10 (rel), 40 (not)          -> AP = (1/1) / 2 = 0.5
    # Query 1 (10 deg), R = 2: 0 (rel), 40 (not)                       -> 0.5
    # Query 2 (100 deg), R = 2: 40 (60 deg away, not), 10 (90, rel)    -> (1/2) / 2 = 0.25
    # Query 3 (40 deg), R = 1: 10 (30 deg away, not)                   -> 0
    # Query 4 (200 deg), R = 1: 100 (100 deg away; 0 is 160, 10 is 170) -> not relevant: 0
    expected = (0.5 + 0.5 + 0.25 + 0 + 0) / 5
    scores = retrieval_metrics(z, y, backend="torch")
    assert scores["map_at_r"] == pytest.approx(expected)
    assert scores["precision_at_1"] == pytest.approx(2 / 5)  # queries 0 and 1
    assert scores["r_precision"] == pytest.approx((0.5 + 0.5 + 0.5 + 0 + 0) / 5)
    assert map_at_r(z, y) == pytest.approx(expected)


def test_perfect_ranking_scores_one_and_separate_references_work():
    rng = np.random.default_rng(0)
    centres = np.eye(4) * 10
    labels = np.repeat(np.arange(4), 6)
    z = centres[labels] + rng.normal(scale=0.1, size=(24, 4))
    assert map_at_r(z, labels) == pytest.approx(1.0)
    # A separate reference set: R = number of references of the query's class.
    queries = centres[[0, 1]] + 0.05
    scores = retrieval_metrics(queries, [0, 1], z, labels)
    assert scores["map_at_r"] == pytest.approx(1.0) and scores["num_queries"] == 2


def test_chunked_search_equals_whole(monkeypatch):
    from labelless.evaluate import retrieval

    generator = torch.Generator().manual_seed(1)
    z = torch.randn(60, 5, generator=generator)
    y = torch.randint(0, 3, (60,), generator=generator)
    whole = retrieval_metrics(z, y)
    monkeypatch.setattr(retrieval, "RESULT_BYTES", 12 * 40 * 7)  # 7 queries per chunk
    chunked = retrieval_metrics(z, y)
    for key in ("map_at_r", "r_precision", "precision_at_1"):
        assert chunked[key] == pytest.approx(whole[key], abs=1e-12)


def test_singletons_are_skipped_and_errors_explain():
    z = angles([0, 5, 90])
    scores = retrieval_metrics(z, [0, 0, 1])
    assert scores["num_queries"] == 2 and scores["num_queries_skipped"] == 1
    assert math.isclose(scores["map_at_r"], 1.0)
    with pytest.raises(DataError, match="no query has a relevant"):
        retrieval_metrics(z, [0, 1, 2])

"""DTW: hand computation, a naive reference, lower bounds and 1-NN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelless.evaluate.timeseries import (
    _prepare,
    dtw_1nn,
    dtw_distances,
    dtw_lower_bounds,
)


def _naive(x, y, band=None):
    n, m = x.shape[-1], y.shape[-1]
    table = np.full((n + 1, m + 1), np.inf)
    table[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if band is not None and abs(i - j) > band:
                continue
            cost = ((x[:, i - 1] - y[:, j - 1]) ** 2).sum()
            table[i, j] = cost + min(table[i - 1, j], table[i, j - 1], table[i - 1, j - 1])
    return table[n, m]


def test_dtw_by_hand():
    # x = 0 1 2, y = 0 2: squared costs [[0, 4], [1, 1], [4, 0]]; best path 0 + 1 + 0 = 1
    x = np.array([[[0.0, 1.0, 2.0]]])
    y = np.array([[[0.0, 2.0]]])
    assert dtw_distances(x, y, window=None).item() == pytest.approx(1.0)
    # a shifted copy costs nothing when warping may absorb the shift
    z = np.array([[[0.0, 0.0, 1.0, 2.0]]])
    assert dtw_distances(x, z, window=None).item() == pytest.approx(0.0)


@pytest.mark.parametrize("window", [None, 2, 0.25])
def test_dtw_matches_naive_reference(window):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 2, 12)).astype(np.float32)
    b = rng.normal(size=(3, 2, 14)).astype(np.float32)
    a[1, :, 7:] = np.nan  # unequal lengths
    got = dtw_distances(a, b, window=window, pairs_per_chunk=5).numpy()
    for i in range(4):
        for j in range(3):
            x = a[i][:, ~np.isnan(a[i]).any(0)]
            y = b[j]
            n, m = x.shape[1], y.shape[1]
            if window is None:
                band = None
            else:
                width = window if isinstance(window, int) else int(np.ceil(window * max(n, m)))
                band = max(width, abs(n - m))
            assert got[i, j] == pytest.approx(_naive(x, y, band), rel=1e-5)


@pytest.mark.parametrize("unequal", [False, True])
def test_lower_bounds_are_lower(unequal):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(10, 2, 30)).astype(np.float32)
    b = rng.normal(size=(8, 2, 36)).astype(np.float32)
    if unequal:
        a[2, :, 12:] = np.nan
        a[3, :, 5:] = np.nan  # far shorter than any reference: empty envelopes past its end
        b[1, :, 20:] = np.nan
    exact = dtw_distances(a, b, window=0.1)
    (qa, la), (rb, lb) = _prepare(a), _prepare(b)
    bounds = dtw_lower_bounds(qa, la, rb, lb, 0.1)
    assert (bounds <= exact + 1e-4).all() and (bounds > 0.1 * exact).float().mean() > 0.5


def test_pruned_1nn_equals_exhaustive():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(25, 1, 40)).astype(np.float32)
    test = rng.normal(size=(20, 1, 40)).astype(np.float32)
    train_y, test_y = rng.integers(0, 3, 25), rng.integers(0, 3, 20)
    exhaustive = dtw_distances(test, train, 0.1).argmin(dim=1).numpy()
    expected = float((train_y[exhaustive] == test_y).mean())
    assert dtw_1nn(train, train_y, test, test_y, 0.1, candidates_per_round=2) == expected


def test_1nn_dtw_on_shifted_shapes():
    # class 0: a bump, class 1: a step, each at a random position; DTW 1-NN separates them
    rng = np.random.default_rng(3)
    t = np.arange(60)

    def draw(count):
        labels = rng.integers(0, 2, count)
        shifts = rng.integers(10, 40, count)
        bump = np.exp(-0.5 * ((t[None] - shifts[:, None]) / 3.0) ** 2)
        step = (t[None] >= shifts[:, None]).astype(float)
        x = np.where(labels[:, None] == 0, bump, step) + 0.05 * rng.normal(size=(count, 60))
        return x[:, None].astype(np.float32), labels

    (train, train_y), (test, test_y) = draw(20), draw(40)
    assert dtw_1nn(train, train_y, test, test_y, window=None) == 1.0
    assert torch.is_tensor(dtw_distances(train[:2], test[:3]))

"""RankMe and embedding std on matrices whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelless.evaluate import embedding_std, rankme


def test_rankme_of_orthonormal_columns_is_the_dimension():
    q, _ = torch.linalg.qr(torch.randn(200, 32, generator=torch.Generator().manual_seed(0)))
    assert rankme(q) == pytest.approx(32, rel=0.01)
    assert rankme(torch.eye(16)) == pytest.approx(16, rel=0.01)


def test_rankme_of_rank_one_matrix_is_one():
    rng = np.random.default_rng(0)
    z = np.outer(rng.normal(size=300), rng.normal(size=24))
    assert rankme(z) == pytest.approx(1.0, abs=0.01)


def test_rankme_subsamples_deterministically():
    z = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    assert rankme(z, max_samples=100) == rankme(z, max_samples=100)
    assert rankme(z, max_samples=100) == pytest.approx(rankme(z), rel=0.05)


def test_embedding_std_separates_collapse_from_spread():
    assert embedding_std(torch.ones(100, 64)) == pytest.approx(0.0, abs=1e-7)
    spread = torch.randn(4000, 64, generator=torch.Generator().manual_seed(0))
    assert embedding_std(spread) == pytest.approx(1 / 8, rel=0.05)

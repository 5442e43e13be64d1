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


def test_rankme_of_isotropic_gaussian_is_near_full_rank():
    z = torch.randn(20_000, 32, generator=torch.Generator().manual_seed(0))
    assert rankme(z) == pytest.approx(32, rel=0.01)


def test_rankme_of_rank_three_matrix_is_near_three():
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(2000, 3, generator=generator) @ torch.randn(3, 64, generator=generator)
    assert 2.8 < rankme(z) <= 3.0 + 1e-3
    # Equal singular values on 3 orthogonal directions: exactly 3.
    q, _ = torch.linalg.qr(torch.randn(500, 3, generator=generator))
    basis, _ = torch.linalg.qr(torch.randn(64, 3, generator=generator))
    assert rankme(q @ basis.T) == pytest.approx(3.0, rel=1e-3)


def test_rankme_caps_rows_at_the_papers_25600():
    from labelless.evaluate.rankme import RANKME_MAX_SAMPLES, seeded_rows

    assert RANKME_MAX_SAMPLES == 25_600
    z = torch.randn(26_000, 4, generator=torch.Generator().manual_seed(0))
    z[:, 0] *= torch.linspace(0.1, 10, 26_000)  # rows differ: which ones are used matters
    subset = seeded_rows(z, RANKME_MAX_SAMPLES)
    assert len(subset) == RANKME_MAX_SAMPLES
    assert rankme(z) == rankme(subset, max_samples=10**9)
    assert rankme(z) != rankme(z, max_samples=10**9)

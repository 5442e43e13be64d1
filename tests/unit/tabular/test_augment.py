"""augment/tabular.py: marginal corruption keeps each column's distribution; view recipes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from labelless.augment.tabular import marginal_corruption, tabular_views
from labelless.errors import ConfigError

META = {"numeric": ["a", "b"], "categorical": ["c"]}
PROBS = np.array([0.0, 0.6, 0.3, 0.1])  # code 0 never occurs


def _table(n: int, seed: int) -> torch.Tensor:
    """A lognormal column, a bimodal column and a skewed categorical code column."""
    rng = np.random.default_rng(seed)
    a = rng.lognormal(0, 1, n)
    b = np.where(rng.random(n) < 0.3, rng.normal(-3, 0.5, n), rng.normal(2, 1, n))
    c = rng.choice(4, n, p=PROBS)
    return torch.tensor(np.stack([a, b, c], 1), dtype=torch.float32)


def test_corruption_keeps_every_marginal():
    """Rows and reference drawn from one distribution: the corrupted columns follow it.

    Two-sample Kolmogorov-Smirnov against an independent fresh sample (numeric columns) and a
    chi-square goodness of fit (categorical codes), 4,000 rows each; the test is fixed-seed and
    requires p > 0.01 for each column. The same tests reject a corruption that samples from the
    wrong column (p < 1e-6), so they have the power to see a broken marginal.
    """
    x, reference, fresh = _table(4000, 0), _table(4000, 1), _table(4000, 2)
    generator = torch.Generator().manual_seed(0)
    corrupted, mask = marginal_corruption(x, reference, 0.6, generator, return_mask=True)
    assert abs(mask.float().mean().item() - 0.6) < 0.02
    assert torch.equal(corrupted[~mask], x[~mask])
    for j in (0, 1):
        assert stats.ks_2samp(corrupted[:, j].numpy(), fresh[:, j].numpy()).pvalue > 0.01
    counts = np.bincount(corrupted[:, 2].long().numpy(), minlength=4)[1:]
    assert stats.chisquare(counts, PROBS[1:] * len(x)).pvalue > 0.01
    wrong = marginal_corruption(x, reference[:, [1, 0, 2]], 0.6, generator)
    assert stats.ks_2samp(wrong[:, 0].numpy(), fresh[:, 0].numpy()).pvalue < 1e-6


def test_corruption_rate_zero_and_one():
    x, reference = _table(100, 0), _table(50, 1)
    assert torch.equal(marginal_corruption(x, reference, 0.0), x)
    full = marginal_corruption(x, reference, 1.0, torch.Generator().manual_seed(0))
    for j in range(3):  # every value comes from that column of the reference
        assert torch.isin(full[:, j], reference[:, j]).all()
    with pytest.raises(ConfigError, match="same F"):
        marginal_corruption(x, reference[:, :2], 0.5)


def test_recipes_and_their_view_layouts():
    x, reference = _table(64, 0), _table(500, 1)
    seeded = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    scarf = tabular_views("scarf", reference=reference, meta=META)(x, seeded())
    assert len(scarf) == 2 and torch.equal(scarf[0], x) and not torch.equal(scarf[1], x)
    anchor, corrupted, mask = tabular_views("vime", reference=reference, meta=META)(x, seeded())
    assert torch.equal(anchor, x) and mask.dtype == torch.float32
    assert torch.equal(corrupted[mask == 0], x[mask == 0]) and 0.2 < mask.mean() < 0.4
    assert tabular_views("tjepa", reference=reference, meta=META)(x)[0] is not None
    (weak,) = tabular_views("weak", reference=reference, meta=META)(x, seeded())
    assert torch.equal(weak[:, 2], x[:, 2]) and 0.03 < (weak - x)[:, :2].std() < 0.07
    (strong,) = tabular_views("strong", reference=reference, meta=META, rate=0.5)(x, seeded())
    assert 0.3 < (strong != x).float().mean() < 0.5  # some resampled values equal the original
    again = tabular_views("scarf", reference=reference, meta=META)(x, seeded())
    assert torch.equal(again[1], scarf[1])  # the generator makes the views reproducible


def test_reference_is_a_subsampled_non_persistent_buffer():
    views = tabular_views("scarf", reference=_table(300, 0), meta=META, max_reference=100)
    assert views.reference.shape == (100, 3) and "reference" not in views.state_dict()
    assert views.to(torch.float64).reference.dtype == torch.float64


def test_bad_recipe_options_are_config_errors():
    reference = _table(10, 0)
    with pytest.raises(ConfigError, match="unknown tabular view recipe 'scraf'"):
        tabular_views("scraf", reference=reference, meta=META)
    with pytest.raises(ConfigError, match="takes the options rate, corrupt_anchor"):
        tabular_views("scarf", reference=reference, meta=META, noise=0.1)
    with pytest.raises(ConfigError, match=r"reference rows must be \[N, 3\]"):
        tabular_views("scarf", reference=reference[:, :2], meta=META)

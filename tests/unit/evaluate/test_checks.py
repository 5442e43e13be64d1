"""Option checks of the evaluation verbs and the collapse warning (evaluate/checks.py)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from labelless.errors import ConfigError
from labelless.evaluate import embedding_std, knn_predict, rankme
from labelless.evaluate.checks import (
    check_fraction,
    check_int,
    check_knn_options,
    check_positive,
    collapse_message,
    warn_if_collapsed,
)


@pytest.mark.parametrize(
    ("k", "temperature", "named"),
    [(0, 0.1, "--k"), (-5, 0.1, "--k"), (2.5, 0.1, "--k"), (True, 0.1, "--k"),
     (20, 0.0, "--temperature"), (20, -1.0, "--temperature"), (20, math.nan, "--temperature")],
)  # fmt: skip
def test_knn_options_out_of_range_name_the_option(k, temperature, named):
    with pytest.raises(ConfigError, match=named):
        check_knn_options(k, temperature)


def test_knn_options_in_range_pass_numpy_ints_too():
    check_knn_options(1, 1e-3)
    check_knn_options(np.int64(200), np.float32(0.1))


def test_knn_predict_refuses_k_zero_that_used_to_vote_with_nobody():
    z = torch.randn(10, 4)
    labels = torch.arange(10) % 2
    with pytest.raises(ConfigError, match=r"--k .* must be an integer >= 1, got 0"):
        knn_predict(z, labels, z, k=0)
    with pytest.raises(ConfigError, match=r"--temperature .* must be a number > 0, got 0"):
        knn_predict(z, labels, z, k=3, temperature=0)


def test_generic_checks_say_value_and_example():
    with pytest.raises(ConfigError, match=r"--epochs must be an integer >= 1, got 0: e.g. 5"):
        check_int("--epochs", 0, 1, 5)
    with pytest.raises(ConfigError, match=r"--lr must be a number > 0, got -0.1"):
        check_positive("--lr", -0.1, 1e-3)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match="strictly between 0 and 1"):
            check_fraction("--val-fraction", bad, 0.1)
    check_fraction("--val-fraction", 0.5, 0.1)


def test_collapsed_embeddings_warn_and_healthy_ones_do_not():
    generator = torch.Generator().manual_seed(0)
    healthy = torch.randn(500, 32, generator=generator)
    # every row the same direction plus a whisper of noise: RankMe ~1, normalised std ~0
    collapsed = torch.ones(500, 32) + 1e-4 * torch.randn(500, 32, generator=generator)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_collapsed(rankme(healthy), embedding_std(healthy), 32)
    with pytest.warns(UserWarning, match=r"looks collapsed on digits test .*lower learning rate"):
        assert warn_if_collapsed(rankme(collapsed), embedding_std(collapsed), 32, "on digits test")


def test_collapse_thresholds_are_the_monitors():
    # RankMe 1.4 < 1.5 collapses; a normalised std of 0.04 < 0.05 collapses; both fine: none
    assert "RankMe 1.40" in collapse_message(1.4, 0.9)
    assert "std 0.040" in collapse_message(20.0, 0.04)
    assert collapse_message(1.5, 0.05) is None

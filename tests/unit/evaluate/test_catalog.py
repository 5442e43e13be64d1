"""The metric catalog: patterns, order, directions, and every producer's names declared."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from labelless.evaluate.catalog import (
    declare_metric,
    declared_metrics,
    metric_info,
    order_metrics,
)
from labelless.evaluate.protocol import evaluate_embeddings
from labelless.evaluate.tabular import PROTOCOLS


def test_a_pattern_names_a_family_of_metrics():
    info = metric_info("few_shot_10_top1")
    assert (info.name, info.family, info.declared) == ("few_shot_10_top1", "few_shot", True)
    assert info.label.startswith("10-shot")
    rmse = metric_info("mlp_rmse_0.01")
    assert rmse.family == "tables" and not rmse.higher_is_better and "0.01" in rmse.label
    assert rmse.sort_key(0.2) < rmse.sort_key(0.3)  # smaller is better
    assert not metric_info("few_shot_5_top1_std").shown
    assert not metric_info("few_shot_x_y_top1").declared  # a field never spans an underscore


def test_directions():
    assert metric_info("knn_top1").direction == "higher is better"
    assert metric_info("ridge_rmse").direction == "lower is better"
    alpha = metric_info("alpha_req")
    assert alpha.direction == "closer to 1 is better"
    assert alpha.sort_key(1.1) < alpha.sort_key(0.7) < alpha.sort_key(1.5)


def test_an_undeclared_name_is_a_stand_in_assumed_higher_is_better():
    info = metric_info("made_up_score")
    assert not info.declared and info.higher_is_better and not info.charted
    assert info.settings == ()  # nothing to compare but the data and preprocessing


def test_order_is_the_catalog_order_then_undeclared_names_as_given():
    names = ["zeta", "test_top1", "ridge_rmse", "mlp_accuracy_1", "linear_accuracy_0.01"]
    names += ["linear_accuracy_1", "rankme", "few_shot_5_top1", "few_shot_1_top1", "alpha"]
    names += ["knn_top1", "svm_top1"]
    assert order_metrics(names) == [
        "knn_top1",
        "few_shot_5_top1",  # one pattern's names keep the order given
        "few_shot_1_top1",
        "rankme",
        "ridge_rmse",
        "svm_top1",
        "linear_accuracy_0.01",
        "linear_accuracy_1",
        "mlp_accuracy_1",
        "test_top1",
        "zeta",
        "alpha",
    ]


def test_declaring_again_is_a_no_op_and_a_conflict_is_an_error():
    before = len(declared_metrics())
    assert declare_metric("catalog_test_score", "a test", "catalog_test") == "catalog_test_score"
    declare_metric("catalog_test_score", "a test", "catalog_test")
    assert len(declared_metrics()) == before + 1
    assert declared_metrics()[-1].name == "catalog_test_score"  # outside PRODUCERS: last
    with pytest.raises(ValueError, match="already declared"):
        declare_metric("catalog_test_score", "a test", "catalog_test", higher_is_better=False)


def test_every_recorded_number_is_declared():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(12)
    z = torch.randn(4, 8, generator=generator)[labels] + torch.randn(48, 8, generator=generator)
    metrics = evaluate_embeddings(z, labels, z, labels, k=5, shots=(1, 5), few_shot_draws=2)
    names = [name for name, value in metrics.items() if isinstance(value, float)]
    # suite.modality_protocols' names for the evaluate_table rows, and the other producers'
    names += [f"{p}_{m}_{f:g}" for p in PROTOCOLS for m in ("accuracy", "rmse") for f in (1, 0.01)]
    names += ["ridge_rmse", "ridge_r2", "svm_top1"]
    names += ["test_top1", "test_top1_online", "open_set_auroc"]
    assert [name for name in names if not metric_info(name).declared] == []


def test_looking_up_imports_neither_lightning_nor_does_compare_import_torch():
    code = (
        "import sys\n"
        "import labelless.report.compare\n"
        "assert 'torch' not in sys.modules, 'compare imports torch'\n"
        "from labelless.evaluate.catalog import metric_info\n"
        "assert metric_info('test_top1').family == 'semi_test'\n"
        "assert 'lightning' not in sys.modules, 'the catalog imports Lightning'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
